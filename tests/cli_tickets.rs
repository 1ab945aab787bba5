//! The ticket command line, run as the real binary against a fresh SQLite
//! file: migrate, import customers (a bad file imports nothing), create,
//! list, show and transition; API tokens made, listed and revoked.

use std::path::Path;
use std::process::{Command, Output};

fn hotline(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(args)
        .env("HOTLINE_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env_remove("HOTLINE_TICKETS_SLA_FILE")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("hotline runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn tickets_can_be_worked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let migrated = hotline(&db, &["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated));

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "name,level,language,phones,products\n甲,group,zh,13800000001,\n乙,vip,zh,1380000000x,\n",
    )
    .unwrap();
    let refused = hotline(&db, &["customers", "import", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    let message = text(&refused);
    assert!(
        message.contains("line 3: unknown customer level \"vip\""),
        "{message}"
    );
    assert!(
        message.contains("line 3: \"1380000000x\" is not a phone number"),
        "{message}"
    );
    assert!(message.contains("nothing was imported"), "{message}");

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "name,level,language,phones,products\n甲,group,zh,13800000001,virtual_network:V-9\n",
    )
    .unwrap();
    let imported = hotline(&db, &["customers", "import", good.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", text(&imported));
    assert!(text(&imported).contains("imported 1 customer(s)"));

    let created = hotline(
        &db,
        &[
            "ticket",
            "create",
            "--type",
            "fault_report",
            "--category",
            "virtual_network",
            "--phone",
            "13800000001",
            "--description",
            "短号拨不通",
        ],
    );
    let shown = text(&created);
    assert!(created.status.success(), "{shown}");
    assert!(shown.contains("level           group (集团级)"), "{shown}");
    assert!(
        shown.contains("next actions    dispatch, cancel"),
        "{shown}"
    );
    let number = shown
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .expect("ticket number on the first line")
        .to_string();

    let listed = hotline(&db, &["ticket", "list", "--open", "--level", "group"]);
    assert!(text(&listed).contains(&number), "{}", text(&listed));
    assert!(text(&listed).contains("(1 ticket(s))"));

    let wrong = hotline(&db, &["ticket", "transition", &number, "resolve"]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("cannot resolve a ticket that is new"),
        "{}",
        text(&wrong)
    );
    let stale = hotline(
        &db,
        &[
            "ticket",
            "transition",
            &number,
            "dispatch",
            "--version",
            "7",
        ],
    );
    assert!(
        text(&stale).contains("changed by someone else"),
        "{}",
        text(&stale)
    );
    let dispatched = hotline(
        &db,
        &[
            "ticket",
            "transition",
            &number,
            "dispatch",
            "--by",
            "wang",
            "--version",
            "1",
        ],
    );
    assert!(dispatched.status.success(), "{}", text(&dispatched));

    let show = hotline(&db, &["ticket", "show", &number]);
    let history = text(&show);
    assert!(history.contains("status          dispatched"), "{history}");
    assert!(history.contains("staff:wang"), "{history}");
    assert!(history.contains("accept due"), "{history}");

    // The same number with its check digit changed: always refused.
    let last = number.as_bytes()[9] - b'0';
    let mistyped = format!("{}{}", &number[..9], (last + 1) % 10);
    let refused = hotline(&db, &["ticket", "show", &mistyped]);
    assert!(
        text(&refused).contains("looks mistyped"),
        "{}",
        text(&refused)
    );
}

#[test]
fn api_tokens_are_shown_once_listed_without_the_token_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokens.db");
    assert!(hotline(&db, &["migrate"]).status.success());
    let created = hotline(
        &db,
        &["token", "create", "--name", "li.na", "--role", "agent"],
    );
    assert!(created.status.success(), "{}", text(&created));
    let shown = text(&created);
    let token = shown
        .split_whitespace()
        .find(|word| word.starts_with("hl_") && word.len() == 3 + 64)
        .unwrap_or_else(|| panic!("no token in {shown}"))
        .to_string();
    assert!(shown.contains("token 1 for li.na (agent)"), "{shown}");

    let refused = hotline(&db, &["token", "create", "--name", "x", "--role", "boss"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("expected one of: agent, supervisor, admin"),
        "{}",
        text(&refused)
    );

    let listed = text(&hotline(&db, &["token", "list"]));
    assert!(listed.contains("li.na"), "{listed}");
    assert!(!listed.contains(&token), "the list never shows a token");
    assert!(listed.contains("(1 token(s))"), "{listed}");

    let revoked = hotline(&db, &["token", "revoke", "1"]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert!(text(&revoked).contains("token 1 (li.na, agent) revoked at"));
    let listed = text(&hotline(&db, &["token", "list"]));
    let line = listed.lines().find(|l| l.contains("li.na")).unwrap();
    assert!(
        !line.trim_end().ends_with(" -"),
        "a revocation time: {line}"
    );
    let unknown = hotline(&db, &["token", "revoke", "9"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("there is no token 9"),
        "{}",
        text(&unknown)
    );
}

/// A database URL's password never reaches the terminal: not in the error
/// of a database that cannot be opened, nor in `check-config`.
#[test]
fn database_passwords_are_never_printed() {
    let url = "postgres://hotline:TOPSECRET@127.0.0.1:1/hotline";
    for args in [&["ticket", "list"][..], &["check-config"][..]] {
        let output = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(args)
            .env("HOTLINE_DATABASE_URL", url)
            .env("HOTLINE_SMS_GENERIC_SECRET", "ALSOSECRET")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("hotline runs");
        let shown = text(&output);
        assert!(!shown.contains("TOPSECRET"), "{args:?}: {shown}");
        assert!(!shown.contains("ALSOSECRET"), "{args:?}: {shown}");
        assert!(
            shown.contains("postgres://hotline:***@127.0.0.1:1/hotline"),
            "{args:?} still says which database: {shown}"
        );
    }
}
