//! `agent`: the stack's servers (`agent serve ...`) and the probes (`agent probe ...`).
//!
//! Exit codes: a probe that ran exits 0 whatever its outcome, with its result as one JSON object on
//! stdout; bad arguments exit 2 (message on stderr); a server exits 0 on SIGTERM and 1 if it cannot start.

use std::io::Write as _;
use std::process::ExitCode;

use agent::cli::{Cli, Command, Server};
use clap::Parser as _;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Probe { probe } => {
            let spec = match probe.into_spec() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("agent: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("agent: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let result = if spec.cancel_on_stdin {
                runtime.block_on(agent::probe::run_until(&spec, async {
                    // Anything on standard input, or its end, is the harness's signal to stop (some
                    // exec transports cannot close stdin, all can write to it).
                    use tokio::io::AsyncReadExt as _;
                    let mut byte = [0u8; 1];
                    let _ = tokio::io::stdin().read(&mut byte).await;
                }))
            } else {
                runtime.block_on(agent::probe::run(&spec))
            };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", result.to_json());
            let _ = out.flush();
            // Exit without tearing the runtime down: a resolver thread or a librdkafka handle may still
            // be waiting on the network, and the answer is already out.
            std::process::exit(0);
        }
        Command::Serve { server } => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("agent: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let served = runtime.block_on(async {
                match server {
                    Server::Frontend {
                        https_port,
                        http_port,
                        bind,
                        tls_cert,
                        tls_key,
                    } => {
                        let files = agent::serve::TlsFiles {
                            cert: tls_cert,
                            key: tls_key,
                        };
                        agent::serve::frontend(bind, https_port, http_port, files).await
                    }
                    Server::Api {
                        port,
                        admin_port,
                        bind,
                    } => agent::serve::api(bind, port, admin_port).await,
                    Server::Idle { health_port, bind } => {
                        agent::serve::idle(bind, health_port).await
                    }
                    Server::Dns {
                        port,
                        health_port,
                        records,
                        bind,
                    } => match agent::serve::dns::parse_records(&records) {
                        Ok(r) => agent::serve::dns::serve(bind, port, health_port, r).await,
                        Err(e) => Err(e),
                    },
                }
            });
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("agent: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
