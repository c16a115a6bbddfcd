#!/usr/bin/env bash
# Points S3 event notifications at citrine's queue (the QueueArn output of deploy/lambda.yaml):
# objects created under the input prefix (new inputs), and run markers (`.manifest`) created
# under the lake prefix (Redshift loads, when [redshift] is configured).
#
#   deploy/s3-notifications.sh QUEUE_ARN INPUT_BUCKET INPUT_PREFIX LAKE_BUCKET LAKE_PREFIX
#   e.g. deploy/s3-notifications.sh arn:aws:sqs:us-east-1:123456789012:citrine-Queue-X \
#          my-logs cloudfront/ my-lake lake/
#
# CloudFormation can only configure notifications on buckets a stack creates; these buckets
# exist already. Caution: this REPLACES each bucket's notification configuration (merge by hand
# with `aws s3api get-bucket-notification-configuration` when a bucket already has some).
set -euo pipefail
if [ $# -ne 5 ]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
queue=$1 input_bucket=$2 input_prefix=$3 lake_bucket=$4 lake_prefix=$5
rule() { # id, filter rules JSON
  printf '{"Id":"%s","QueueArn":"%s","Events":["s3:ObjectCreated:*"],"Filter":{"Key":{"FilterRules":%s}}}' \
    "$1" "$queue" "$2"
}
inputs=$(rule citrine-inputs "[{\"Name\":\"prefix\",\"Value\":\"$input_prefix\"}]")
markers=$(rule citrine-markers "[{\"Name\":\"prefix\",\"Value\":\"$lake_prefix\"},{\"Name\":\"suffix\",\"Value\":\".manifest\"}]")
put() { # bucket, rules
  aws s3api put-bucket-notification-configuration --bucket "$1" \
    --notification-configuration "{\"QueueConfigurations\":[$2]}"
  echo "$1: notifications -> $queue"
}
if [ "$input_bucket" = "$lake_bucket" ]; then
  put "$input_bucket" "$inputs,$markers"
else
  put "$input_bucket" "$inputs"
  put "$lake_bucket" "$markers"
fi
