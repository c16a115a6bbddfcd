//! A TCP proxy in front of the local endpoint that plays "the server stopped mid-run": it
//! forwards bytes both ways until the client has sent `trigger` for the `nth` time, then
//! closes every connection and refuses new ones for good.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A running proxy.
pub struct Proxy {
    pub url: String,
    pub cut: Arc<AtomicBool>,
}

/// Forward 127.0.0.1:<new port> to `upstream` (`http://127.0.0.1:PORT`).
pub fn start(upstream: &str, trigger: &str, nth: usize) -> Proxy {
    let target = upstream.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cut = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicUsize::new(0));
    let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let trigger = trigger.as_bytes().to_vec();
    let flag = cut.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            if flag.load(Ordering::SeqCst) {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            {
                let mut open = open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
            }
            // Server to client: a plain copy.
            let (mut s, mut c) = (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s, &mut c);
                let _ = c.shutdown(Shutdown::Write);
            });
            // Client to server: watch for the trigger.
            let (mut c, mut s) = (client, server);
            let (flag, seen, open, trigger) =
                (flag.clone(), seen.clone(), open.clone(), trigger.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let hits = buf[..n]
                        .windows(trigger.len())
                        .filter(|w| *w == trigger.as_slice())
                        .count();
                    if hits > 0 && seen.fetch_add(hits, Ordering::SeqCst) + hits >= nth {
                        flag.store(true, Ordering::SeqCst);
                        for stream in open.lock().unwrap().iter() {
                            let _ = stream.shutdown(Shutdown::Both);
                        }
                        return;
                    }
                    if flag.load(Ordering::SeqCst) || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    Proxy { url, cut }
}
