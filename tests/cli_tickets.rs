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

/// The first `YYYY-MM-DD HH:MM:SS±HH:MM` time in `line`.
fn first_time(line: &str) -> &str {
    (0..line.len())
        .filter(|&i| line.is_char_boundary(i) && line.is_char_boundary((i + 25).min(line.len())))
        .map(|i| &line[i..(i + 25).min(line.len())])
        .find(|candidate| {
            chrono::DateTime::parse_from_str(candidate, "%Y-%m-%d %H:%M:%S%:z").is_ok()
        })
        .unwrap_or_else(|| panic!("a time in {line:?}"))
}

/// The display column where `needle` starts in `line`.
fn column_of(line: &str, needle: &str) -> usize {
    use unicode_width::UnicodeWidthStr;
    let at = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} in {line:?}"));
    line[..at].width()
}

/// Times are the SLA calendar's (Asia/Shanghai), with the offset, as the
/// console and the texts show them; tables stay aligned with Chinese text.
#[test]
fn times_are_local_and_tables_align_with_chinese_text() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("local.db");
    assert!(hotline(&db, &["migrate"]).status.success());
    let descriptions = [
        "专线中断，总部无法访问",
        "no dial tone",
        "宽带断了\n灯一直闪\u{1b}[2J",
    ];
    for (n, description) in descriptions.iter().enumerate() {
        let created = hotline(
            &db,
            &[
                "ticket",
                "create",
                "--type",
                "fault_report",
                "--category",
                "bandwidth",
                "--phone",
                &format!("1380000000{n}"),
                "--description",
                description,
                "--by",
                if n == 0 { "王工" } else { "li" },
            ],
        );
        assert!(created.status.success(), "{}", text(&created));
    }
    let before = chrono::Utc::now() - chrono::Duration::minutes(5);
    let after = chrono::Utc::now() + chrono::Duration::minutes(1);
    let local = |shown: &str| {
        let at = chrono::DateTime::parse_from_str(shown, "%Y-%m-%d %H:%M:%S%:z")
            .unwrap_or_else(|e| panic!("{shown:?}: {e}"));
        assert_eq!(at.offset().local_minus_utc(), 8 * 3600, "{shown}");
        let at = at.with_timezone(&chrono::Utc);
        assert!(before < at && at < after, "{shown} is now, in +08:00");
    };

    let listed = text(&hotline(&db, &["ticket", "list"]));
    assert!(!listed.contains('\u{1b}'), "no escape reaches the terminal");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 1 + 3 + 1, "{listed}");
    let header = lines[0];
    for line in &lines[1..4] {
        let created = first_time(line);
        local(created);
        assert_eq!(column_of(line, created), column_of(header, "CREATED"));
        let description = line[line.find(created).unwrap() + 25..].trim_start();
        assert_eq!(
            column_of(line, description),
            column_of(header, "DESCRIPTION"),
            "{listed}"
        );
    }
    assert!(listed.contains("专线中断，总部无法访问"), "{listed}");
    assert!(listed.contains("宽带断了 灯一直闪 [2J"), "{listed}");

    let number = lines[3].split_whitespace().next().unwrap();
    let shown = text(&hotline(&db, &["ticket", "show", number]));
    let created = shown
        .lines()
        .find_map(|line| line.trim().strip_prefix("created"))
        .unwrap()
        .trim();
    local(created);
    let history: Vec<&str> = shown
        .lines()
        .skip_while(|line| *line != "history:")
        .skip(1)
        .collect();
    assert!(!history.is_empty(), "{shown}");
    for line in history {
        local(first_time(line));
    }
    assert!(
        !shown.contains(":00Z") && !listed.contains(":00Z"),
        "no UTC Z times"
    );

    for (name, role) in [("王小明", "agent"), ("li.na", "supervisor")] {
        let made = hotline(&db, &["token", "create", "--name", name, "--role", role]);
        assert!(made.status.success(), "{}", text(&made));
    }
    let tokens = text(&hotline(&db, &["token", "list"]));
    let lines: Vec<&str> = tokens.lines().collect();
    for line in &lines[1..3] {
        assert_eq!(
            column_of(
                line,
                if line.contains("王") {
                    "agent"
                } else {
                    "supervisor"
                }
            ),
            column_of(lines[0], "ROLE"),
            "{tokens}"
        );
        local(first_time(line));
    }
}
