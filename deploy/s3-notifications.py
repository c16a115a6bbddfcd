#!/usr/bin/env python3
"""Point S3 event notifications at citrine's queue (the QueueArn output of deploy/lambda.yaml):
objects created under the input prefix (new inputs), and run markers (`.manifest`) created under
the lake prefix (Redshift loads, when [redshift] is configured).

    deploy/s3-notifications.py QUEUE_ARN INPUT_BUCKET INPUT_PREFIX LAKE_BUCKET LAKE_PREFIX
    e.g. deploy/s3-notifications.py arn:aws:sqs:us-east-1:123456789012:citrine-Queue-X \\
           my-logs cloudfront/ my-lake lake/

CloudFormation configures notifications only on buckets a stack creates, and these buckets
exist already. Each bucket's configuration is merged, not replaced: its other queue, topic and
Lambda rules and its EventBridge setting stay, and citrine's own two rules (ids citrine-inputs
and citrine-markers) are put in place, so running this again changes nothing. A rule of the
bucket's that overlaps citrine's (the same events on an overlapping prefix and suffix) makes
S3 refuse the whole configuration; the error says so, and nothing changes.

Needs Python 3 with boto3 (pip install boto3) and credentials allowed
s3:GetBucketNotification and s3:PutBucketNotification on both buckets.
"""
import sys

import boto3

OURS = ("citrine-inputs", "citrine-markers")


def rule(rule_id, queue, filters):
    return {
        "Id": rule_id,
        "QueueArn": queue,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": filters}},
    }


def merged(current, rules):
    """`current` (GetBucketNotificationConfiguration's answer) with citrine's `rules` in place
    of any earlier ones of theirs."""
    config = {k: v for k, v in current.items() if k != "ResponseMetadata"}
    queues = [q for q in config.get("QueueConfigurations", []) if q.get("Id") not in OURS]
    config["QueueConfigurations"] = queues + rules
    return config


def main(queue, input_bucket, input_prefix, lake_bucket, lake_prefix):
    inputs = rule("citrine-inputs", queue, [{"Name": "prefix", "Value": input_prefix}])
    markers = rule(
        "citrine-markers",
        queue,
        [{"Name": "prefix", "Value": lake_prefix}, {"Name": "suffix", "Value": ".manifest"}],
    )
    wanted = {}
    wanted.setdefault(input_bucket, []).append(inputs)
    wanted.setdefault(lake_bucket, []).append(markers)
    s3 = boto3.client("s3")
    for bucket, rules in wanted.items():
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=merged(current, rules)
        )
        print(f"{bucket}: {', '.join(r['Id'] for r in rules)} -> {queue} (other notifications kept)")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
