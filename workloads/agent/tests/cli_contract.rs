//! The process contract with the harness: exit codes, stdout, and servers that stop on SIGTERM.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{AgentServer, run_agent};

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bad_arguments_exit_2_with_a_message_on_stderr_and_nothing_on_stdout() {
    for bad in [
        args(&["probe", "tcp"]),
        args(&["probe", "tcp", "--target", "no-port"]),
        args(&["probe", "gopher", "--target", "h:1"]),
        args(&[
            "probe",
            "kafka",
            "--target",
            "h:1",
            "--topic",
            "t",
            "--action",
            "produce",
            "--mode",
            "exact",
            "--rdkafka-config",
            "a=b",
        ]),
    ] {
        let (code, stdout, stderr) = run_agent(&bad);
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(stdout.is_empty(), "{bad:?} printed {stdout:?}");
        assert!(!stderr.is_empty(), "{bad:?} said nothing");
    }
}

fn terminate(server: &mut AgentServer) -> std::process::ExitStatus {
    let pid = server.child.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = server.child.0.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < until, "the server ignored SIGTERM for 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_server_exits_0_on_sigterm() {
    for a in [
        &["frontend", "--https-port", "0", "--http-port", "0"][..],
        &["api", "--port", "0", "--admin-port", "0"][..],
        &["idle", "--health-port", "0"][..],
    ] {
        let mut server = AgentServer::start(a);
        let status = terminate(&mut server);
        assert!(status.success(), "{a:?} exited {status:?}");
    }
}

#[test]
fn a_server_that_cannot_bind_its_port_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = Command::new(common::agent_bin())
        .args([
            "serve",
            "idle",
            "--bind",
            "127.0.0.1",
            "--health-port",
            &port,
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
}
