//! A small HTTP fake of a JSON-protocol AWS API (`X-Amz-Target`), for the answers the local
//! servers never give (throttling, failed or aborted statements).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Every request the fake saw: (target, body).
pub type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// Serve JSON-protocol AWS calls (Glue, Redshift Data API) on 127.0.0.1: each request's (target, body) is recorded; `answer` gives the reply.
pub fn fake_api(
    answer: impl Fn(&str, &Value, usize) -> (u16, Value) + Send + 'static,
) -> (String, Calls) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Calls = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut target, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("x-amz-target:") {
                    // `AWSGlue.GetTable` → `gettable`.
                    target = v.trim().rsplit('.').next().unwrap_or_default().to_owned();
                }
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let n = {
                let mut log = log.lock().unwrap();
                log.push((target.clone(), body.clone()));
                log.iter().filter(|(t, _)| *t == target).count()
            };
            let (status, reply) = answer(&target, &body, n);
            let text = reply.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, seen)
}
