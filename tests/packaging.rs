//! The packaging files are true: the production example configuration
//! loads (with its secret from the environment, as the unit provides it, and
//! refuses to without), uses PostgreSQL, trusted trunks only (identity
//! assertions from the SBCs only), a real call time limit and a real SMS
//! provider, and configures every transfer target the shipped dialplans
//! name; the systemd unit runs that configuration with hardening and passes
//! `systemd-analyze verify` where it is installed; the Kamailio
//! configuration for scale-out passes `kamailio -c` where it is installed.

use hotline::config::Config;
use hotline::ivr::dialplan::Dialplan;
use hotline::ivr::runner::unknown_transfer_targets;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn check_config(secret: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hotline"));
    command
        .arg("--config")
        .arg(repo("packaging/hotline.production.toml"))
        .arg("check-config")
        .env_remove("HOTLINE_DATABASE_URL")
        .env_remove("HOTLINE_SMS_OUTBOX_AUTH_TOKEN");
    if let Some(secret) = secret {
        command.env("HOTLINE_SMS_OUTBOX_AUTH_TOKEN", secret);
    }
    command.output().expect("hotline runs")
}

#[test]
fn the_production_example_loads_with_its_secret_from_the_environment() {
    let loaded = check_config(Some("a-secret-token"));
    let text = String::from_utf8_lossy(&loaded.stdout);
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert!(text.contains("url = \"postgres://"), "{text}");
    assert!(text.contains("provider = \"twilio\""), "{text}");
    assert!(text.contains("auth_token = \"(set)\""), "{text}");
    assert!(!text.contains("a-secret-token"), "secrets are not printed");

    let refused = check_config(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("sms_outbox.auth_token"),
        "without the secret it names what is missing"
    );
}

#[test]
fn the_production_example_trusts_only_its_trunks_and_serves_the_shipped_dialplans() {
    let secret = [(
        "HOTLINE_SMS_OUTBOX_AUTH_TOKEN".to_string(),
        "a-secret-token".to_string(),
    )];
    let config = Config::load_from(Some(&repo("packaging/hotline.production.toml")), &secret)
        .expect("the configuration is valid");
    assert!(config.database.url.starts_with("postgres://"));
    assert!(!config.sip.trusted_networks.is_empty());
    assert!(
        config
            .sip
            .trusted_networks
            .iter()
            .all(|net| net.prefix_len() >= 8),
        "no network open to the world: {:?}",
        config.sip.trusted_networks
    );
    assert!(
        config.sip.asserted_identity_from.iter().all(|net| config
            .sip
            .trusted_networks
            .iter()
            .any(|trusted| trusted.contains(net))),
        "identity assertions only from sources that may send SIP at all"
    );
    assert!(
        config.calls.max_duration_secs >= 600,
        "calls are not cut off inside a menu walk: {} s",
        config.calls.max_duration_secs
    );
    assert_eq!(config.log.format, "json");
    // Trunks that offer SRTP get it; plain ones are still answered (SDES
    // keys are only secret over encrypted signalling, so not "required").
    assert_eq!(config.media.srtp, hotline::sip::sdp::SrtpMode::Optional);
    let mut plans = Vec::new();
    for entry in std::fs::read_dir(repo("dialplans")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            plans.push(Dialplan::load(&path).expect("a shipped dialplan"));
        }
    }
    assert!(!plans.is_empty());
    let problems = unknown_transfer_targets(&plans, &config.transfer);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_production_example_fits_the_units_open_file_limit() {
    let secret = [(
        "HOTLINE_SMS_OUTBOX_AUTH_TOKEN".to_string(),
        "a-secret-token".to_string(),
    )];
    let config = Config::load_from(Some(&repo("packaging/hotline.production.toml")), &secret)
        .expect("the configuration is valid");
    let unit = std::fs::read_to_string(repo("packaging/hotline.service")).unwrap();
    let limit: u64 = unit
        .lines()
        .find_map(|line| line.strip_prefix("LimitNOFILE="))
        .expect("the unit sets LimitNOFILE")
        .parse()
        .unwrap();
    let demand = hotline::resources::Demand::of(&config);
    assert!(
        hotline::resources::plan(limit, limit, demand).is_ok(),
        "{demand:?} needs {} descriptors, the unit allows {limit}",
        demand.total()
    );
    // The carrier's SBCs are proxies: many dialogs on their connections.
    assert!(!config.sip_connections.proxy_networks.is_empty());
}

#[test]
fn the_unit_runs_the_configuration_hardened() {
    let unit = std::fs::read_to_string(repo("packaging/hotline.service")).unwrap();
    for line in [
        "ExecStart=/usr/local/bin/hotline --config /etc/hotline/hotline.toml serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=hotline",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "Restart=always",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line} missing from the unit"
        );
    }
    let Ok(output) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(repo("packaging/hotline.service"))
        .output()
    else {
        eprintln!("systemd-analyze is not installed: unit not verified");
        return;
    };
    let complaints: Vec<String> = String::from_utf8_lossy(&output.stderr)
        .lines()
        // The binary is not installed on a build machine.
        .filter(|l| !l.contains("/usr/local/bin/hotline is not executable"))
        .map(str::to_string)
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

/// The shipped Kamailio configuration: its two deployment lines are the
/// marked `#!substdef`s the scale-out suite substitutes, it keeps the
/// settings operations.md describes, and `kamailio -c` accepts it where
/// Kamailio is installed (the suite runs it for real).
#[test]
fn the_kamailio_configuration_is_complete_and_valid() {
    let cfg = std::fs::read_to_string(repo("packaging/kamailio/kamailio.cfg")).unwrap();
    for marked in [
        "#!substdef \"!HOTLINE_LISTEN!",
        "#!substdef \"!HOTLINE_DISPATCHER_LIST!",
    ] {
        assert_eq!(
            cfg.lines().filter(|l| l.starts_with(marked)).count(),
            1,
            "{marked} must be one line"
        );
    }
    for setting in [
        "modparam(\"dispatcher\", \"ds_probing_mode\", 1)",
        "modparam(\"dispatcher\", \"flags\", 2)",
        "ds_next_dst()",
        "record_route()",
        "loose_route()",
        "sanity_check(",
        "mf_process_maxfwd_header(",
        "kamcmd dispatcher.set_state",
    ] {
        assert!(cfg.contains(setting), "{setting} missing from kamailio.cfg");
    }
    let list = std::fs::read_to_string(repo("packaging/kamailio/dispatcher.list")).unwrap();
    let gateways: Vec<Vec<&str>> = list
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(gateways.len() >= 2, "{gateways:?}");
    for fields in &gateways {
        assert_eq!(
            fields[0], "1",
            "set 1 is the one kamailio.cfg uses: {fields:?}"
        );
        assert!(fields[1].starts_with("sip:"), "{fields:?}");
    }
    let Ok(output) = Command::new("kamailio")
        .arg("-c")
        .arg("-f")
        .arg(repo("packaging/kamailio/kamailio.cfg"))
        .output()
    else {
        eprintln!("kamailio is not installed: configuration not checked by it");
        return;
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
