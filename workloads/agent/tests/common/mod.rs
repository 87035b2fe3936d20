//! Shared helpers of the agent's integration tests: run the real `agent` binary, start its servers, and
//! small responders of the tests' own. Everything listens on 127.0.0.1 only.

#![allow(dead_code)] // each test binary uses a different subset

pub mod kafka_responder;
pub mod servers;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use probe_wire::{ProbeResult, ProbeSpec};

/// The agent binary built by cargo for these tests.
pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_agent")
}

/// Runs `agent <args>` and returns its exit code, stdout and stderr.
pub fn run_agent(args: &[String]) -> (i32, String, String) {
    let out = Command::new(agent_bin())
        .args(args)
        .output()
        .expect("run the agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a probe the way the harness does (the spec's own command line) and parses its result. Asserts
/// exit 0 and that the process ended within the spec's deadline plus one second.
pub fn probe(spec: &ProbeSpec) -> ProbeResult {
    let args = spec.to_args();
    assert_eq!(args[0], "agent");
    let started = Instant::now();
    let (code, stdout, stderr) = run_agent(&args[1..]);
    let took = started.elapsed();
    assert_eq!(code, 0, "agent exited {code}; stderr: {stderr}");
    assert!(
        took <= Duration::from_millis(spec.timeout_ms) + Duration::from_secs(1),
        "the probe took {took:?}, past its {} ms deadline",
        spec.timeout_ms
    );
    ProbeResult::from_json(&stdout)
        .unwrap_or_else(|e| panic!("{e}; stdout: {stdout:?}; stderr: {stderr}"))
}

/// A child process that is killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server of the agent itself (`agent serve ...`), with the addresses it printed.
pub struct AgentServer {
    pub child: Guard,
    pub ports: std::collections::BTreeMap<String, SocketAddr>,
}

impl AgentServer {
    /// Starts `agent serve <args> --bind 127.0.0.1` and waits for its `listening` line.
    pub fn start(args: &[&str]) -> AgentServer {
        let mut child = Command::new(agent_bin())
            .arg("serve")
            .args(args)
            .args(["--bind", "127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start agent serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("listening line {line:?}: {e}"));
        let ports = v["listening"]
            .as_object()
            .expect("listening object")
            .iter()
            .map(|(k, a)| {
                (
                    k.clone(),
                    a.as_str().expect("addr").parse().expect("socket addr"),
                )
            })
            .collect();
        AgentServer {
            child: Guard(child),
            ports,
        }
    }

    /// The address of the named port, as a probe target.
    pub fn target(&self, port: &str) -> String {
        self.ports[port].to_string()
    }
}

/// A TCP responder of the test's own: a thread accepting on 127.0.0.1 and handing every connection to
/// `serve`. It stops with the test process.
pub fn responder<F>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serve = std::sync::Arc::new(serve);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let serve = serve.clone();
            thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// Reads an HTTP request head (up to the blank line).
pub fn read_request_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// Answers every request with `response` (raw bytes) and closes.
pub fn http_responder(response: &'static [u8]) -> SocketAddr {
    responder(move |mut s| {
        read_request_head(&mut s);
        let _ = s.write_all(response);
        let _ = s.flush();
    })
}

/// Reads the request, then resets the connection (SO_LINGER 0 then close sends a RST).
pub fn reset_responder() -> SocketAddr {
    responder(|mut s| {
        read_request_head(&mut s);
        let sock = socket2::SockRef::from(&s);
        let _ = sock.set_linger(Some(Duration::ZERO));
        drop(s);
    })
}

/// Accepts connections and never answers (holds them until the test process ends).
pub fn silent_responder() -> SocketAddr {
    responder(|mut s| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    })
}

/// A port where the kernel drops SYNs: a listener with a backlog of 0 whose accept queue is already full
/// (one connection is made and never accepted), so further SYNs are dropped, as a policy drop would.
/// Returns the port's address and the objects that must stay alive.
pub fn syn_dropping_port() -> (SocketAddr, socket2::Socket, TcpStream) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    listener.bind(&any.into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    let filler = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("fill the queue");
    (addr, listener, filler)
}

/// A loopback port with nothing listening (bound then closed).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A free port number on 127.0.0.1 for a server that must be told its port.
pub fn free_port() -> u16 {
    closed_port().port()
}

/// Waits until `addr` accepts TCP connections, or panics after `within`.
pub fn wait_for_port(addr: SocketAddr, within: Duration, what: &str) {
    let until = Instant::now() + within;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        assert!(
            Instant::now() < until,
            "{what} did not listen on {addr} within {within:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
