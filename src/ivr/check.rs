//! The dialplan checker: looks at parsed plans as a whole, after
//! `Dialplan::parse` has checked each node's schema, and reports every
//! problem it finds with the file and the node's line.
//!
//! What is checked:
//!
//! 1. every node a node goes to, and every entry's start node, exists
//!    (with a did-you-mean for near misses);
//! 2. every node is reachable from some entry;
//! 3. every prompt exists in every language of the plan, and so do the
//!    prompts the say functions need for each kind of value read out
//!    (digits, numbers, money, dates, times, durations);
//! 4. menu keys are single keys (0-9, * or #), and a menu has at least one;
//! 5. no loop runs without ever waiting for the caller (only menus and
//!    collects wait);
//! 6. collect and menu settings can be satisfied (digit limits, terminator,
//!    prefixes, ticket-number and phone-number validation, confirm keys,
//!    timeouts, retries);
//! 7. variable names are well formed, and every `${name}` refers to a
//!    built-in variable ([`BUILTIN_VARIABLES`]) or one some collect or set
//!    node of the same plan sets;
//! 8. each branch case has exactly one well-formed condition;
//! 9. no dialled number is an entry of two plans, and no plan is without
//!    entries;
//! 10. a ticket lookup by number has a number, one by caller has none;
//! 11. a ticket survey's score, when written as a literal, is 1 to 5, and
//!     no path from an entry reaches the survey without a ticket: the path
//!     must pass a ticket lookup's `found`, a ticket creation (or a note or
//!     survey that succeeded), or a branch case that tests a `ticket.*`
//!     variable (`is_set = true` or `equals`). A transferred call's ticket
//!     is loaded before its entry node, so a survey plan checks
//!     `ticket.number` first.
//!
//! Prompt names with templates: a prompt whose only variable is
//! `${ticket.status}` (e.g. `status/${ticket.status}`) is checked for every
//! ticket status code; any other templated prompt name is not checked for
//! existence (its variables still are), as its values are not known here.
//!
//! Not checked: whether a variable is set on every path before it is used
//! (only that something in the plan sets it), transfer targets (they belong
//! to the transfer configuration), ticket categories (sla.toml) and the
//! entries' dialled-number format.

use super::dialplan::{
    Branch, Case, Collect, Dialplan, DialplanError, LookupBy, Menu, Node, NodeKind, Problem,
    Record, SayItem, Speech, Validation, MAX_RECORD_SECS,
};
use super::say::required_prompts;
use crate::tickets::model::{Language, Status};
use crate::tickets::number::LENGTH as TICKET_NUMBER_LENGTH;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// The variables every call has (some only once a customer or ticket is
/// known), usable as `${name}` in any template.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "caller",
    "contact",
    "dialled",
    "language",
    "customer.name",
    "customer.level",
    "ticket.number",
    "ticket.status",
    "ticket.type",
    "ticket.category",
    "ticket.repair_due",
    "ticket.created_at",
    "ticket.details",
    "tickets.open_count",
    "tickets.position",
    "transferred_by",
    "transfer.failure",
    "recording.id",
    "recording.calls",
];

/// The fewest and most digits a phone number that can be called back has
/// (`crate::phone`): what a collect with `validate = "phone"` must allow.
const PHONE_DIGITS: (u32, u32) = (7, 15);

/// The most digits a collect may take.
pub const MAX_DIGITS: u32 = 64;
/// The most retries a menu or collect may have.
pub const MAX_RETRIES: u32 = 10;
/// The keys of a telephone keypad.
const KEYS: &[&str] = &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"];
/// How many missing say prompts one message lists before "and N more".
const LISTED: usize = 10;

/// A short digest of the dialplan files in `dir` (names and contents, in
/// name order), the same on every instance that has the same files: what
/// `/readyz` and the instance list show to tell a reload that reached only
/// some instances. "none" when there are none.
pub fn dir_version(dir: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut paths = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
                paths.push(path);
            }
        }
    }
    if paths.is_empty() {
        return Ok("none".to_string());
    }
    paths.sort();
    let mut digest = Sha256::new();
    for path in &paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        digest.update(name.unwrap_or_default().as_bytes());
        digest.update([0]);
        digest.update(std::fs::read(path)?);
        digest.update([0]);
    }
    Ok(digest
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Loads every `*.toml` in `dir` (sorted by name), parses each, and checks
/// them together. `Err` lists every problem in every file: parse errors of
/// the files that do not parse, and the checker's problems for the rest.
/// A directory without dialplans gives `Ok` with no plans.
pub fn load_dir(
    dir: &Path,
    prompt_exists: &dyn Fn(&str) -> bool,
) -> Result<Vec<Dialplan>, DialplanError> {
    let unreadable = |e: std::io::Error| DialplanError {
        problems: vec![Problem {
            file: dir.display().to_string(),
            line: None,
            message: format!("cannot read the dialplan directory: {e}"),
        }],
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for path in &paths {
        match Dialplan::load(path) {
            Ok(plan) => plans.push(plan),
            Err(e) => problems.extend(e.problems),
        }
    }
    problems.extend(check(&plans, prompt_exists));
    if problems.is_empty() {
        Ok(plans)
    } else {
        sort(&mut problems);
        Err(DialplanError { problems })
    }
}

/// Checks parsed plans; returns every problem, sorted by file and line
/// (empty = good). `prompt_exists("zh/welcome")` says whether a prompt is
/// available.
pub fn check(plans: &[Dialplan], prompt_exists: &dyn Fn(&str) -> bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    for plan in plans {
        let mut checker = Checker {
            plan,
            prompt_exists,
            problems: &mut problems,
        };
        checker.run();
    }
    // 9: a dialled number belongs to one plan.
    let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
    for plan in plans {
        for number in plan.entries.keys() {
            match owners.get(number.as_str()) {
                Some(first) => problems.push(Problem {
                    file: plan.file.clone(),
                    line: None,
                    message: format!("entry \"{number}\" is in both {first} and {}", plan.file),
                }),
                None => {
                    owners.insert(number, &plan.file);
                }
            }
        }
    }
    sort(&mut problems);
    problems
}

/// By file, then line (problems without a line first); stable otherwise.
fn sort(problems: &mut [Problem]) {
    problems.sort_by(|a, b| (a.file.as_str(), a.line).cmp(&(b.file.as_str(), b.line)));
}

struct Checker<'a, 'p> {
    plan: &'a Dialplan,
    prompt_exists: &'a dyn Fn(&str) -> bool,
    problems: &'p mut Vec<Problem>,
}

impl<'a> Checker<'a, '_> {
    fn run(&mut self) {
        self.targets();
        self.reachability();
        self.prompts();
        self.loops();
        self.variables();
        self.surveys_without_ticket();
        for node in self.plan.nodes.values() {
            match &node.kind {
                NodeKind::Menu(menu) => self.menu(node, menu),
                NodeKind::Collect(collect) => self.collect(node, collect),
                NodeKind::Record(record) => self.record(node, record),
                NodeKind::Branch(branch) => self.branch(node, branch),
                NodeKind::TicketLookup(lookup) => match (&lookup.by, &lookup.number) {
                    (LookupBy::Number, None) => self.at(
                        node,
                        "by = \"number\" needs a number (e.g. \"${ticket_no}\")",
                    ),
                    (LookupBy::Caller | LookupBy::CallerNext, Some(_)) => self.at(
                        node,
                        "by = \"caller\" and \"caller_next\" take no number: they find the \
                         caller's own tickets",
                    ),
                    _ => {}
                },
                NodeKind::TicketSurvey(survey)
                    if references(&survey.score).0.is_empty()
                        && super::engine::survey_score(&survey.score).is_none() =>
                {
                    self.at(
                        node,
                        format!("score \"{}\" is not a digit 1 to 5", survey.score),
                    )
                }
                NodeKind::SetLanguage(set) if !self.plan.languages.contains(&set.language) => self
                    .at(
                        node,
                        format!(
                            "switches to {}, which is not in the plan's languages, so its \
                             prompts are not checked",
                            set.language.code()
                        ),
                    ),
                _ => {}
            }
        }
        if self.plan.entries.is_empty() {
            self.add(
                None,
                "[dialplan] has no entries, so no call ever starts here; add one such as \
                 entries = { \"10000\" = \"welcome\" }",
            );
        }
    }

    fn add(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.plan.file.clone(),
            line,
            message: message.into(),
        });
    }

    /// A problem with one node, prefixed with its name.
    fn at(&mut self, node: &Node, message: impl std::fmt::Display) {
        self.add(
            Some(node.line),
            format!("node \"{}\": {message}", node.name),
        );
    }

    fn node_names(&self) -> impl Iterator<Item = &'a str> {
        self.plan.nodes.keys().map(String::as_str)
    }

    /// Nodes in file order.
    fn nodes_by_line(&self) -> Vec<&'a Node> {
        let mut nodes: Vec<&Node> = self.plan.nodes.values().collect();
        nodes.sort_by_key(|n| (n.line, n.name.as_str()));
        nodes
    }

    // 1: targets and entries exist.
    fn targets(&mut self) {
        let plan = self.plan;
        for (number, start) in &plan.entries {
            if !plan.nodes.contains_key(start) {
                let hint = did_you_mean(start, self.node_names());
                self.add(
                    None,
                    format!("entry \"{number}\" goes to \"{start}\", which does not exist{hint}"),
                );
            }
        }
        for node in plan.nodes.values() {
            let mut seen = BTreeSet::new();
            for (_, target) in node.kind.targets() {
                if !plan.nodes.contains_key(target) && seen.insert(target) {
                    let hint = did_you_mean(target, self.node_names());
                    self.add(
                        Some(node.line),
                        format!(
                            "node \"{}\" goes to \"{target}\", which does not exist{hint}",
                            node.name
                        ),
                    );
                }
            }
        }
    }

    // 2: every node is reached from some entry.
    fn reachability(&mut self) {
        let nodes = &self.plan.nodes;
        let mut stack: Vec<&str> = self
            .plan
            .entries
            .values()
            .map(String::as_str)
            .filter(|start| nodes.contains_key(*start))
            .collect();
        if stack.is_empty() {
            // No usable entry: already reported; every node would be noise.
            return;
        }
        let mut reached = BTreeSet::new();
        while let Some(name) = stack.pop() {
            if reached.insert(name) {
                for (_, target) in nodes[name].kind.targets() {
                    if nodes.contains_key(target) && !reached.contains(target) {
                        stack.push(target);
                    }
                }
            }
        }
        for node in self.nodes_by_line() {
            if !reached.contains(node.name.as_str()) {
                self.add(
                    Some(node.line),
                    format!("node \"{}\" is never reached from any entry", node.name),
                );
            }
        }
    }

    // 3: prompts exist in every language.
    fn prompts(&mut self) {
        let languages = self.plan.languages.clone();
        // Say prompts already reported missing, so that a prompt shared by
        // several kinds (numbers/1 for numbers and money) is listed once.
        let mut reported: BTreeSet<String> = BTreeSet::new();
        let mut kinds_done: BTreeSet<&str> = BTreeSet::new();
        for node in self.nodes_by_line() {
            let mut seen = BTreeSet::new();
            for speech in node.kind.speech() {
                match speech {
                    Speech::Prompt(name) => {
                        if !seen.insert(name.as_str()) {
                            continue;
                        }
                        let Some(expanded) = expand_prompt(name) else {
                            continue;
                        };
                        for lang in &languages {
                            for concrete in &expanded {
                                let full = format!("{}/{concrete}", lang.code());
                                if (self.prompt_exists)(&full) {
                                    continue;
                                }
                                let from = if concrete == name {
                                    String::new()
                                } else {
                                    format!(" (for \"{name}\")")
                                };
                                self.at(
                                    node,
                                    format!(
                                        "prompt \"{concrete}\"{from} is missing in {} \
                                         (prompts/{full}.wav)",
                                        lang.code()
                                    ),
                                );
                            }
                        }
                    }
                    Speech::Say(item) => {
                        let Some((kind, categories)) = say_kind(item) else {
                            continue;
                        };
                        if !kinds_done.insert(kind) {
                            continue;
                        }
                        for lang in &languages {
                            let missing: Vec<String> = required_prompts(*lang)
                                .into_iter()
                                .filter(|p| in_categories(p, categories))
                                .filter(|p| !(self.prompt_exists)(p))
                                .filter(|p| reported.insert(p.clone()))
                                .collect();
                            if !missing.is_empty() {
                                let message = missing_say_prompts(kind, *lang, &missing);
                                self.at(node, message);
                            }
                        }
                    }
                }
            }
        }
    }

    // 4 and 6: menus.
    fn menu(&mut self, node: &Node, menu: &Menu) {
        if menu.keys.is_empty() {
            self.at(node, "menu has no keys");
        }
        for key in menu.keys.keys() {
            if !is_key(key) {
                self.at(
                    node,
                    format!("menu key \"{key}\" is not a key; use one of 0-9, * or #"),
                );
            }
        }
        if menu.timeout_secs == 0 {
            self.at(
                node,
                "timeout_secs is 0; the caller needs at least 1 second",
            );
        }
        for (key, phrases) in &menu.listen {
            if !menu.keys.contains_key(key) {
                self.at(
                    node,
                    format!(
                        "listen key \"{key}\" is not one of the menu's keys; speech only \
                         presses keys the menu has"
                    ),
                );
            }
            if phrases.is_empty() || phrases.iter().any(|p| p.trim().is_empty()) {
                self.at(
                    node,
                    format!("listen key \"{key}\" needs phrases, none empty"),
                );
            }
        }
        self.retries(node, menu.retries);
    }

    fn record(&mut self, node: &Node, r: &Record) {
        if !(1..=MAX_RECORD_SECS).contains(&r.max_secs) {
            self.at(
                node,
                format!("max_secs {} is not from 1 to {MAX_RECORD_SECS}", r.max_secs),
            );
        }
        for (field, secs) in [
            ("silence_secs", r.silence_secs),
            ("no_speech_secs", r.no_speech_secs),
        ] {
            if secs == 0 {
                self.at(node, format!("{field} is 0; it must be at least 1 second"));
            }
        }
        if !is_key(&r.finish_key) {
            self.at(
                node,
                format!(
                    "finish_key \"{}\" is not a key; use one of 0-9, * or #",
                    r.finish_key
                ),
            );
        }
        if let Some(review) = &r.review {
            for (field, key) in [("keep", &review.keep), ("again", &review.again)] {
                if !is_key(key) {
                    self.at(
                        node,
                        format!("review.{field} \"{key}\" is not a key; use one of 0-9, * or #"),
                    );
                }
            }
            if review.keep == review.again {
                self.at(
                    node,
                    format!("review.keep and review.again are both \"{}\"", review.keep),
                );
            }
            if review.timeout_secs == 0 {
                self.at(
                    node,
                    "review.timeout_secs is 0; the caller needs at least 1 second",
                );
            }
        }
    }

    fn retries(&mut self, node: &Node, retries: u32) {
        if retries > MAX_RETRIES {
            self.at(
                node,
                format!("retries is {retries}, more than {MAX_RETRIES}"),
            );
        }
    }

    // 6: collects that can be satisfied.
    fn collect(&mut self, node: &Node, c: &Collect) {
        let (min, max) = (c.min_digits, c.max_digits);
        if min == 0 {
            self.at(node, "min_digits is 0; a collect needs at least 1 digit");
        }
        if min > max {
            self.at(
                node,
                format!("min_digits {min} is more than max_digits {max}"),
            );
        }
        if max > MAX_DIGITS {
            self.at(node, format!("max_digits {max} is more than {MAX_DIGITS}"));
        }
        if let Some(terminator) = &c.terminator {
            if terminator.len() == 1 && terminator.bytes().all(|b| b.is_ascii_digit()) {
                self.at(
                    node,
                    format!(
                        "terminator \"{terminator}\" is a digit, so it could never be entered \
                         as part of the input; use \"#\" or \"*\""
                    ),
                );
            } else if terminator != "#" && terminator != "*" {
                self.at(
                    node,
                    format!("terminator \"{terminator}\" is not \"#\" or \"*\""),
                );
            }
        }
        for prefix in &c.prefixes {
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                self.at(
                    node,
                    format!("prefix \"{prefix}\" must be one or more digits"),
                );
            } else if prefix.len() > max as usize {
                self.at(
                    node,
                    format!("prefix \"{prefix}\" is longer than max_digits {max}"),
                );
            }
        }
        if c.validate == Validation::TicketNumber
            && !(min as usize..=max as usize).contains(&TICKET_NUMBER_LENGTH)
        {
            self.at(
                node,
                format!(
                    "validate = \"ticket_number\" needs {TICKET_NUMBER_LENGTH} digits, but \
                     min_digits {min} and max_digits {max} exclude them"
                ),
            );
        }
        if c.validate == Validation::Phone && (max < PHONE_DIGITS.0 || min > PHONE_DIGITS.1) {
            self.at(
                node,
                format!(
                    "validate = \"phone\" needs {} to {} digits, but min_digits {min} and \
                     max_digits {max} exclude them",
                    PHONE_DIGITS.0, PHONE_DIGITS.1
                ),
            );
        }
        if let Some(confirm) = &c.confirm {
            for (field, key) in [("yes", &confirm.yes), ("no", &confirm.no)] {
                if !is_key(key) {
                    self.at(
                        node,
                        format!("confirm.{field} \"{key}\" is not a key; use one of 0-9, * or #"),
                    );
                }
            }
            if confirm.yes == confirm.no {
                self.at(
                    node,
                    format!("confirm.yes and confirm.no are both \"{}\"", confirm.yes),
                );
            }
        }
        for (field, secs) in [
            ("first_digit_timeout_secs", c.first_digit_timeout_secs),
            ("inter_digit_timeout_secs", c.inter_digit_timeout_secs),
        ] {
            if secs == 0 {
                self.at(
                    node,
                    format!("{field} is 0; the caller needs at least 1 second"),
                );
            }
        }
        self.retries(node, c.retries);
    }

    // 5: loops that never wait for the caller.
    fn loops(&mut self) {
        let nodes = &self.plan.nodes;
        // The graph of the nodes that do not wait, with edges between them.
        let quiet: BTreeMap<&str, BTreeSet<&str>> = nodes
            .values()
            .filter(|n| !n.kind.waits_for_input())
            .map(|n| {
                let next = n
                    .kind
                    .targets()
                    .into_iter()
                    .map(|(_, t)| t)
                    .filter(|t| nodes.get(*t).is_some_and(|t| !t.kind.waits_for_input()))
                    .collect();
                (n.name.as_str(), next)
            })
            .collect();
        // What each quiet node reaches in one or more steps (plans are small).
        let reach: BTreeMap<&str, BTreeSet<&str>> = quiet
            .keys()
            .map(|&from| {
                let mut seen = BTreeSet::new();
                let mut stack: Vec<&str> = quiet[from].iter().copied().collect();
                while let Some(n) = stack.pop() {
                    if seen.insert(n) {
                        stack.extend(quiet[n].iter().copied());
                    }
                }
                (from, seen)
            })
            .collect();
        let mut done: BTreeSet<&str> = BTreeSet::new();
        for node in self.nodes_by_line() {
            let name = node.name.as_str();
            if done.contains(name) || !reach.get(name).is_some_and(|r| r.contains(name)) {
                continue;
            }
            // The strongly connected part: nodes on some loop through `name`;
            // nodes by line, so `name` is its first node in the file.
            let part: BTreeSet<&str> = reach[name]
                .iter()
                .copied()
                .filter(|other| reach[other].contains(name))
                .collect();
            done.extend(&part);
            let cycle = shortest_cycle(name, &quiet, &part);
            let message = if cycle.len() == 2 {
                format!("node \"{name}\" goes to itself without ever waiting for the caller")
            } else {
                let path: Vec<String> = cycle.iter().map(|n| format!("\"{n}\"")).collect();
                format!(
                    "nodes {} loop without ever waiting for the caller",
                    path.join(" → ")
                )
            };
            self.add(Some(node.line), message);
        }
    }

    // 7: variable names and templates.
    fn variables(&mut self) {
        let mut known: BTreeSet<&str> = BUILTIN_VARIABLES.iter().copied().collect();
        for node in self.plan.nodes.values() {
            let variable = match &node.kind {
                NodeKind::Collect(c) => &c.variable,
                NodeKind::Set(s) => &s.variable,
                _ => continue,
            };
            if is_variable_name(variable) {
                known.insert(variable);
            } else {
                self.at(
                    node,
                    format!("variable \"{variable}\" must be lowercase letters, digits and _ only"),
                );
            }
        }
        for node in self.plan.nodes.values() {
            for (field, template) in templates(&node.kind) {
                let (names, unterminated) = references(template);
                for name in names {
                    if !known.contains(name) {
                        let hint = did_you_mean(name, known.iter().copied());
                        self.at(
                            node,
                            format!(
                                "{field} uses ${{{name}}}, which is not a built-in variable \
                                 nor set by any collect or set node{hint}"
                            ),
                        );
                    }
                }
                if unterminated {
                    self.at(
                        node,
                        format!("{field} has an unterminated \"${{\" in \"{template}\""),
                    );
                }
            }
            if let NodeKind::Branch(branch) = &node.kind {
                for (i, case) in branch.cases.iter().enumerate() {
                    if let Some(variable) = &case.variable {
                        if !known.contains(variable.as_str()) {
                            let hint = did_you_mean(variable, known.iter().copied());
                            self.at(
                                node,
                                format!(
                                    "case {} tests variable \"{variable}\", which is not \
                                     built in nor set by any collect or set node{hint}",
                                    i + 1
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    // 11: surveys and ticket actions only with a ticket.
    fn surveys_without_ticket(&mut self) {
        let plan = self.plan;
        let nodes = &plan.nodes;
        let mut reported: BTreeSet<&str> = BTreeSet::new();
        for (number, start) in &plan.entries {
            // The nodes a call from this entry may reach with no ticket.
            let mut reached: BTreeSet<&str> = BTreeSet::new();
            let mut stack = vec![start.as_str()];
            while let Some(name) = stack.pop() {
                let Some(node) = nodes.get(name) else {
                    continue;
                };
                if !reached.insert(name) {
                    continue;
                }
                stack.extend(targets_without_ticket(&node.kind));
            }
            for node in self.nodes_by_line() {
                let name = node.name.as_str();
                if matches!(
                    node.kind,
                    NodeKind::TicketSurvey(_)
                        | NodeKind::TicketAction(_)
                        | NodeKind::CallbackRequest(_)
                ) && reached.contains(name)
                    && reported.insert(name)
                {
                    self.at(
                        node,
                        format!(
                            "can be reached from entry \"{number}\" without a ticket; go \
                             through a ticket lookup's found, a ticket_create, or a branch \
                             case such as {{ variable = \"ticket.number\", is_set = true, \
                             goto = \"{name}\" }} first"
                        ),
                    );
                }
            }
        }
    }

    // 8: branch cases.
    fn branch(&mut self, node: &Node, branch: &Branch) {
        if branch.cases.is_empty() {
            self.at(node, "branch has no cases; use a goto node instead");
        }
        for (i, case) in branch.cases.iter().enumerate() {
            let n = i + 1;
            for message in case_problems(case) {
                self.at(node, format!("case {n}: {message}"));
            }
        }
    }
}

/// The nodes `kind` may go to while the call may still have no ticket:
/// every target except those only taken with a ticket (a lookup's
/// `found`, the `next` of a creation, note or survey, and a branch case on
/// a `ticket.*` variable being set).
fn targets_without_ticket(kind: &NodeKind) -> Vec<&str> {
    match kind {
        NodeKind::TicketLookup(n) => vec![n.not_found.as_str(), n.on_error.as_str()],
        NodeKind::TicketCreate(n) => vec![n.on_error.as_str()],
        NodeKind::TicketNote(n) => vec![n.on_error.as_str()],
        NodeKind::TicketSurvey(n) => vec![n.on_error.as_str()],
        NodeKind::TicketAction(n) => vec![n.on_error.as_str()],
        NodeKind::CallbackRequest(n) => vec![n.on_error.as_str()],
        NodeKind::Branch(n) => n
            .cases
            .iter()
            .filter(|case| {
                let on_ticket = case
                    .variable
                    .as_deref()
                    .is_some_and(|v| v.starts_with("ticket."));
                !(on_ticket && (case.is_set == Some(true) || case.equals.is_some()))
            })
            .map(|case| case.goto.as_str())
            .chain([n.otherwise.as_str()])
            .collect(),
        other => other.targets().into_iter().map(|(_, t)| t).collect(),
    }
}

/// What is wrong with one branch case (variable names are checked with the
/// other variables).
fn case_problems(case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let set: Vec<&str> = [
        ("caller_known", case.caller_known.is_some()),
        ("level", case.level.is_some()),
        ("business_hours", case.business_hours.is_some()),
        ("day", case.day.is_some()),
        ("time", case.time.is_some()),
        ("variable", case.variable.is_some()),
    ]
    .into_iter()
    .filter(|(_, is_set)| *is_set)
    .map(|(field, _)| field)
    .collect();
    match set.len() {
        0 => problems.push(
            "has no condition; set one of caller_known, level, business_hours, day, time or \
             variable"
                .to_string(),
        ),
        1 => {}
        _ => problems.push(format!(
            "sets {}; a case has exactly one condition (use another branch for more)",
            set.join(", ")
        )),
    }
    if case.level.as_ref().is_some_and(Vec::is_empty) {
        problems.push("level lists no levels, so it never holds".to_string());
    }
    if let Some(day) = &case.day {
        if !["working", "weekend", "holiday"].contains(&day.as_str()) {
            problems.push(format!(
                "day \"{day}\" is not \"working\", \"weekend\" or \"holiday\""
            ));
        }
    }
    if let Some(time) = &case.time {
        match super::engine::parse_time_range(time) {
            None => problems.push(format!("time \"{time}\" is not HH:MM-HH:MM")),
            Some((from, to)) if from == to => problems.push(format!(
                "time \"{time}\" is an empty range, so it never holds"
            )),
            Some(_) => {}
        }
    }
    let tests: Vec<&str> = [
        ("equals", case.equals.is_some()),
        ("is_set", case.is_set.is_some()),
        ("is_phone", case.is_phone.is_some()),
    ]
    .into_iter()
    .filter(|(_, given)| *given)
    .map(|(field, _)| field)
    .collect();
    match (&case.variable, tests.as_slice()) {
        (Some(variable), []) => problems.push(format!(
            "variable \"{variable}\" needs equals, is_set or is_phone"
        )),
        (Some(_), [_]) | (None, []) => {}
        (Some(variable), _) => problems.push(format!(
            "variable \"{variable}\" has {}; use one",
            tests.join(" and ")
        )),
        (None, _) => problems.extend(
            tests
                .iter()
                .map(|test| format!("{test} is only for a variable")),
        ),
    }
    problems
}

/// Every template of a node, with the field it is in.
fn templates(kind: &NodeKind) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    for speech in kind.speech() {
        match speech {
            Speech::Prompt(name) => out.push(("prompt", name.as_str())),
            Speech::Say(item) => out.extend(say_text(item).map(|t| ("say", t))),
        }
    }
    match kind {
        NodeKind::Set(n) => out.push(("value", n.value.as_str())),
        NodeKind::TicketCreate(n) => {
            out.push(("category", n.category.as_str()));
            out.extend(n.service_number.as_deref().map(|t| ("service_number", t)));
            out.push(("description", n.description.as_str()));
        }
        NodeKind::TicketLookup(n) => out.extend(n.number.as_deref().map(|t| ("number", t))),
        NodeKind::TicketNote(n) => out.push(("text", n.text.as_str())),
        NodeKind::TicketSurvey(n) => out.push(("score", n.score.as_str())),
        _ => {}
    }
    out
}

/// The variable names a template refers to, and whether it has a `${`
/// without its `}` (as `speech::render` reads it).
fn references(template: &str) -> (Vec<&str>, bool) {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return (names, true);
        };
        names.push(&after[..end]);
        rest = &after[end + 1..];
    }
    (names, false)
}

/// The concrete prompt names a dialplan prompt name stands for, or `None`
/// when they cannot be known here: a name whose only variable is
/// `${ticket.status}` stands for one name per status code.
fn expand_prompt(name: &str) -> Option<Vec<String>> {
    let (names, unterminated) = references(name);
    if unterminated {
        return None;
    }
    if names.is_empty() {
        return Some(vec![name.to_string()]);
    }
    if names.iter().all(|n| *n == "ticket.status") {
        return Some(
            Status::ALL
                .iter()
                .map(|s| name.replace("${ticket.status}", s.code()))
                .collect(),
        );
    }
    None
}

/// The text of a say item, if it has one.
fn say_text(item: &SayItem) -> Option<&str> {
    match item {
        SayItem::Digits(t)
        | SayItem::Number(t)
        | SayItem::Money(t)
        | SayItem::Date(t)
        | SayItem::Time(t)
        | SayItem::Duration(t) => Some(t),
        SayItem::SilenceMs(_) => None,
    }
}

/// What a say item reads out, and the prompt categories (under the
/// language) the say functions use for it; none for a pause.
fn say_kind(item: &SayItem) -> Option<(&'static str, &'static [&'static str])> {
    Some(match item {
        SayItem::Digits(_) => ("digits", &["digits"]),
        SayItem::Number(_) => ("numbers", &["numbers"]),
        SayItem::Money(_) => ("money", &["numbers", "money"]),
        SayItem::Date(_) => ("dates", &["numbers", "date", "months", "ordinals"]),
        SayItem::Time(_) => ("times", &["numbers", "time"]),
        SayItem::Duration(_) => ("durations", &["numbers", "duration"]),
        SayItem::SilenceMs(_) => return None,
    })
}

/// Whether a full prompt name ("en/numbers/1") is in one of `categories`.
fn in_categories(prompt: &str, categories: &[&str]) -> bool {
    let mut parts = prompt.splitn(3, '/');
    let _language = parts.next();
    parts.next().is_some_and(|c| categories.contains(&c))
}

fn missing_say_prompts(kind: &str, lang: Language, missing: &[String]) -> String {
    let code = lang.code();
    let prefix = format!("{code}/");
    let mut listed: Vec<&str> = missing
        .iter()
        .take(LISTED)
        .map(|p| p.strip_prefix(&prefix).unwrap_or(p))
        .collect();
    let more;
    if missing.len() > LISTED {
        more = format!("and {} more", missing.len() - LISTED);
        listed.push(&more);
    }
    format!(
        "reading {kind} in {code} needs prompts missing from prompts/{code}/: {}",
        listed.join(", ")
    )
}

/// The shortest loop from `start` back to itself inside `part`, as node
/// names with `start` at both ends.
fn shortest_cycle<'n>(
    start: &'n str,
    graph: &BTreeMap<&'n str, BTreeSet<&'n str>>,
    part: &BTreeSet<&'n str>,
) -> Vec<&'n str> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        for &next in &graph[at] {
            if next == start {
                // Walk back from `at` to `start`, then turn the walk around.
                let mut back = vec![start];
                let mut n = at;
                while n != start {
                    back.push(n);
                    n = parent[n];
                }
                back.push(start);
                back.reverse();
                return back;
            }
            if part.contains(next) && next != start && !parent.contains_key(next) {
                parent.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}

fn is_key(key: &str) -> bool {
    KEYS.contains(&key)
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `; did you mean "x"?` for the candidate closest to `word`, if close
/// enough (one edit for short words, two otherwise); else nothing.
fn did_you_mean<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> String {
    let limit = if word.chars().count() <= 3 { 1 } else { 2 };
    candidates
        .filter(|c| *c != word)
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| format!("; did you mean \"{c}\"?"))
        .unwrap_or_default()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r##"
[dialplan]
name = "good"
entries = { "10000" = "hours" }
languages = ["zh", "en"]

[nodes.hours]
kind = "branch"
cases = [
    { business_hours = true, goto = "welcome" },
    { day = "holiday", goto = "closed" },
    { time = "22:00-06:00", goto = "closed" },
    { variable = "language", equals = "en", goto = "welcome" },
]
else = "closed"

[nodes.welcome]
kind = "play"
say = ["welcome", { silence_ms = 300 }]
barge_in = true
next = "main"

[nodes.main]
kind = "menu"
say = ["main_menu"]
keys = { "1" = "ask_number", "0" = "goodbye", "#" = "main" }
on_failure = "goodbye"

[nodes.ask_number]
kind = "collect"
say = ["enter_number"]
variable = "ticket_no"
min_digits = 10
max_digits = 10
terminator = "#"
validate = "ticket_number"
confirm = { before = ["you_entered"], after = ["confirm_or_retry"] }
next = "lookup"
on_failure = "goodbye"

[nodes.lookup]
kind = "ticket_lookup"
by = "number"
number = "${ticket_no}"
found = "status"
not_found = "main"
on_error = "goodbye"

[nodes.status]
kind = "play"
say = ["your_ticket", { digits = "${ticket.number}" }, "status/${ticket.status}"]
next = "goodbye"

[nodes.closed]
kind = "hangup"
say = ["closed"]

[nodes.goodbye]
kind = "hangup"
say = ["goodbye"]
"##;

    /// Every prompt GOOD needs, in both languages.
    fn all_prompts() -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for lang in [Language::Zh, Language::En] {
            all.extend(required_prompts(lang));
            let named = [
                "welcome",
                "main_menu",
                "enter_number",
                "you_entered",
                "confirm_or_retry",
                "your_ticket",
                "closed",
                "goodbye",
            ];
            let statuses = Status::ALL.iter().map(|s| format!("status/{}", s.code()));
            for name in named.into_iter().map(String::from).chain(statuses) {
                all.insert(format!("{}/{name}", lang.code()));
            }
        }
        all
    }

    fn parse(text: &str, file: &str) -> Dialplan {
        Dialplan::parse(text, file).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The problems' messages for one plan, with every prompt available.
    fn messages(text: &str) -> Vec<String> {
        check(&[parse(text, "t.toml")], &|_| true)
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    /// GOOD with one piece of text replaced (which must be there).
    fn good_with(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from}");
        GOOD.replacen(from, to, 1)
    }

    /// A plan of the given nodes, starting at "start".
    fn plan(nodes: &str) -> String {
        format!("[dialplan]\nname = \"t\"\nentries = {{ \"10000\" = \"start\" }}\n{nodes}")
    }

    #[test]
    fn a_good_plan_has_no_problems() {
        let prompts = all_prompts();
        let problems = check(&[parse(GOOD, "good.toml")], &|p| prompts.contains(p));
        assert_eq!(problems, []);
    }

    #[test]
    fn a_missing_target_is_reported_with_a_suggestion() {
        let text = good_with("on_failure = \"goodbye\"", "on_failure = \"goodbey\"");
        let problems = check(&[parse(&text, "t.toml")], &|_| true);
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            lines,
            [
                "t.toml line 23: node \"main\" goes to \"goodbey\", which does not exist; \
              did you mean \"goodbye\"?"
            ]
        );
        // Nothing close enough: no suggestion.
        let text = good_with("next = \"main\"", "next = \"menu_root\"");
        assert_eq!(
            messages(&text)[0],
            "node \"welcome\" goes to \"menu_root\", which does not exist"
        );
    }

    #[test]
    fn a_missing_entry_node_is_reported_without_a_line() {
        let text = good_with("\"10000\" = \"hours\"", "\"10000\" = \"hour\"");
        let problems = check(&[parse(&text, "t.toml")], &|_| true);
        assert_eq!(
            problems,
            [Problem {
                file: "t.toml".into(),
                line: None,
                message: "entry \"10000\" goes to \"hour\", which does not exist; \
                          did you mean \"hours\"?"
                    .into(),
            }]
        );
    }

    #[test]
    fn unreachable_nodes_are_reported() {
        let text = format!("{GOOD}\n[nodes.orphan]\nkind = \"goto\"\nnext = \"main\"\n");
        assert_eq!(
            messages(&text),
            ["node \"orphan\" is never reached from any entry"]
        );
    }

    #[test]
    fn missing_prompts_are_reported_per_language() {
        let mut prompts = all_prompts();
        prompts.remove("en/main_menu");
        prompts.remove("zh/status/closed");
        prompts.remove("en/digits/star");
        prompts.remove("en/digits/pound");
        let problems = check(&[parse(GOOD, "t.toml")], &|p| prompts.contains(p));
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "node \"main\": prompt \"main_menu\" is missing in en (prompts/en/main_menu.wav)",
                "node \"status\": reading digits in en needs prompts missing from \
                 prompts/en/: digits/pound, digits/star",
                "node \"status\": prompt \"status/closed\" (for \"status/${ticket.status}\") \
                 is missing in zh (prompts/zh/status/closed.wav)",
            ]
        );
    }

    #[test]
    fn say_prompts_are_listed_once_and_cut_short() {
        let text = good_with(
            "{ digits = \"${ticket.number}\" }",
            "{ number = \"${tickets.open_count}\" }, { money = \"${tickets.open_count}\" }",
        );
        let prompts = all_prompts();
        let problems = check(&[parse(&text, "t.toml")], &|p| {
            prompts.contains(p) && !p.starts_with("en/numbers/") && p != "en/money/fen"
        });
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "node \"status\": reading numbers in en needs prompts missing from \
                 prompts/en/: numbers/0, numbers/1, numbers/10, numbers/11, numbers/12, \
                 numbers/13, numbers/14, numbers/15, numbers/16, numbers/17, and 23 more",
                "node \"status\": reading money in en needs prompts missing from \
                 prompts/en/: money/fen",
            ]
        );
    }

    #[test]
    fn templated_prompts_other_than_status_are_not_checked() {
        let text = good_with("\"status/${ticket.status}\"", "\"type/${ticket.type}\"");
        let prompts = all_prompts();
        let problems = check(&[parse(&text, "t.toml")], &|p| prompts.contains(p));
        assert_eq!(problems, []);
    }

    #[test]
    fn menu_keys_must_be_single_keys() {
        let text = good_with("\"#\" = \"main\"", "\"10\" = \"main\", \"a\" = \"main\"");
        assert_eq!(
            messages(&text),
            [
                "node \"main\": menu key \"10\" is not a key; use one of 0-9, * or #",
                "node \"main\": menu key \"a\" is not a key; use one of 0-9, * or #",
            ]
        );
    }

    #[test]
    fn a_menu_without_keys_is_reported() {
        let text = plan(
            r##"
[nodes.start]
kind = "menu"
say = ["main_menu"]
keys = {}
on_failure = "bye"

[nodes.bye]
kind = "hangup"
"##,
        );
        assert_eq!(messages(&text), ["node \"start\": menu has no keys"]);
    }

    #[test]
    fn loops_that_never_wait_are_reported() {
        let text = plan(
            r##"
[nodes.start]
kind = "goto"
next = "b"

[nodes.b]
kind = "goto"
next = "start"
"##,
        );
        assert_eq!(
            messages(&text),
            ["nodes \"start\" → \"b\" → \"start\" loop without ever waiting for the caller"]
        );
        let text = plan(
            r##"
[nodes.start]
kind = "play"
say = ["welcome"]
barge_in = true
next = "again"

[nodes.again]
kind = "play"
say = ["welcome"]
next = "more"

[nodes.more]
kind = "play"
say = ["welcome"]
next = "again"
"##,
        );
        assert_eq!(
            messages(&text),
            ["nodes \"again\" → \"more\" → \"again\" loop without ever waiting for the caller"]
        );
        let text = plan("[nodes.start]\nkind = \"goto\"\nnext = \"start\"\n");
        assert_eq!(
            messages(&text),
            ["node \"start\" goes to itself without ever waiting for the caller"]
        );
    }

    #[test]
    fn collects_that_cannot_be_satisfied_are_reported() {
        let cases = [
            (
                "min_digits = 10",
                "min_digits = 0",
                vec!["min_digits is 0; a collect needs at least 1 digit"],
            ),
            (
                "min_digits = 10",
                "min_digits = 11",
                vec![
                    "min_digits 11 is more than max_digits 10",
                    "validate = \"ticket_number\" needs 10 digits, but min_digits 11 and \
                     max_digits 10 exclude them",
                ],
            ),
            (
                "max_digits = 10",
                "max_digits = 65",
                vec!["max_digits 65 is more than 64"],
            ),
            (
                "terminator = \"#\"",
                "terminator = \"1\"",
                vec![
                    "terminator \"1\" is a digit, so it could never be entered as part of \
                     the input; use \"#\" or \"*\"",
                ],
            ),
            (
                "terminator = \"#\"",
                "terminator = \"##\"",
                vec!["terminator \"##\" is not \"#\" or \"*\""],
            ),
            (
                "terminator = \"#\"",
                "prefixes = [\"12345678901\", \"1a\", \"9\"]",
                vec![
                    "prefix \"12345678901\" is longer than max_digits 10",
                    "prefix \"1a\" must be one or more digits",
                ],
            ),
            (
                "after = [\"confirm_or_retry\"] }",
                "after = [\"confirm_or_retry\"], yes = \"2\" }",
                vec!["confirm.yes and confirm.no are both \"2\""],
            ),
            (
                "after = [\"confirm_or_retry\"] }",
                "after = [\"confirm_or_retry\"], no = \"22\" }",
                vec!["confirm.no \"22\" is not a key; use one of 0-9, * or #"],
            ),
            (
                "min_digits = 10\nmax_digits = 10\nterminator = \"#\"\nvalidate = \"ticket_number\"",
                "min_digits = 3\nmax_digits = 5\nterminator = \"#\"\nvalidate = \"phone\"",
                vec![
                    "validate = \"phone\" needs 7 to 15 digits, but min_digits 3 and \
                     max_digits 5 exclude them",
                ],
            ),
            (
                "terminator = \"#\"",
                "first_digit_timeout_secs = 0\ninter_digit_timeout_secs = 0\nretries = 11",
                vec![
                    "first_digit_timeout_secs is 0; the caller needs at least 1 second",
                    "inter_digit_timeout_secs is 0; the caller needs at least 1 second",
                    "retries is 11, more than 10",
                ],
            ),
        ];
        for (from, to, expected) in cases {
            // Every mistake is in ask_number, the only collect of GOOD.
            let text = good_with(from, to);
            let expected: Vec<String> = expected
                .iter()
                .map(|m| format!("node \"ask_number\": {m}"))
                .collect();
            assert_eq!(messages(&text), expected, "{to}");
        }
    }

    #[test]
    fn menu_timeouts_and_retries_are_checked() {
        let text = good_with(
            "on_failure = \"goodbye\"",
            "on_failure = \"goodbye\"\ntimeout_secs = 0\nretries = 99",
        );
        assert_eq!(
            messages(&text),
            [
                "node \"main\": timeout_secs is 0; the caller needs at least 1 second",
                "node \"main\": retries is 99, more than 10",
            ]
        );
    }

    #[test]
    fn variables_must_be_well_named_and_known() {
        let text = good_with("variable = \"ticket_no\"", "variable = \"Ticket-No\"");
        assert_eq!(
            messages(&text),
            [
                "node \"ask_number\": variable \"Ticket-No\" must be lowercase letters, \
                 digits and _ only",
                "node \"lookup\": number uses ${ticket_no}, which is not a built-in \
                 variable nor set by any collect or set node",
            ]
        );
        let text = good_with("\"${ticket_no}\"", "\"${tiket_no}\"");
        assert_eq!(
            messages(&text),
            [
                "node \"lookup\": number uses ${tiket_no}, which is not a built-in variable \
              nor set by any collect or set node; did you mean \"ticket_no\"?"
            ]
        );
        let text = good_with(
            "{ digits = \"${ticket.number}\" }",
            "{ digits = \"${ticket.nmber\" }",
        );
        assert_eq!(
            messages(&text),
            ["node \"status\": say has an unterminated \"${\" in \"${ticket.nmber\""]
        );
        let text = good_with("\"status/${ticket.status}\"", "\"status/${ticket.state}\"");
        assert_eq!(
            messages(&text),
            [
                "node \"status\": prompt uses ${ticket.state}, which is not a built-in \
              variable nor set by any collect or set node; did you mean \"ticket.status\"?"
            ]
        );
    }

    #[test]
    fn variables_set_by_set_nodes_are_known() {
        let text = plan(
            r##"
[nodes.start]
kind = "set"
variable = "greeting"
value = "hello ${customer.name}"
next = "note"

[nodes.note]
kind = "ticket_note"
text = "${greeting} from ${caller}, ${custmer.level}"
next = "bye"
on_error = "bye"

[nodes.bye]
kind = "hangup"
"##,
        );
        assert_eq!(
            messages(&text),
            [
                "node \"note\": text uses ${custmer.level}, which is not a built-in variable \
              nor set by any collect or set node; did you mean \"customer.level\"?"
            ]
        );
    }

    #[test]
    fn branch_cases_are_checked() {
        let text = plan(
            r##"
[nodes.start]
kind = "branch"
cases = [
    { goto = "bye" },
    { day = "working", time = "09:00-18:00", goto = "bye" },
    { day = "weekday", goto = "bye" },
    { time = "9am-6pm", goto = "bye" },
    { time = "09:00-09:00", goto = "bye" },
    { equals = "1", goto = "bye" },
    { caller_known = true, is_set = true, goto = "bye" },
    { variable = "caller", goto = "bye" },
    { variable = "caler", is_set = true, goto = "bye" },
    { level = [], goto = "bye" },
    { variable = "contact", is_set = true, is_phone = true, goto = "bye" },
    { is_phone = false, goto = "bye" },
    { variable = "contact", is_phone = true, goto = "bye" },
]
else = "bye"

[nodes.bye]
kind = "hangup"
"##,
        );
        let expected = [
            "case 9 tests variable \"caler\", which is not built in nor set by any collect \
             or set node; did you mean \"caller\"?",
            "case 1: has no condition; set one of caller_known, level, business_hours, day, \
             time or variable",
            "case 2: sets day, time; a case has exactly one condition (use another branch \
             for more)",
            "case 3: day \"weekday\" is not \"working\", \"weekend\" or \"holiday\"",
            "case 4: time \"9am-6pm\" is not HH:MM-HH:MM",
            "case 5: time \"09:00-09:00\" is an empty range, so it never holds",
            "case 6: has no condition; set one of caller_known, level, business_hours, day, \
             time or variable",
            "case 6: equals is only for a variable",
            "case 7: is_set is only for a variable",
            "case 8: variable \"caller\" needs equals, is_set or is_phone",
            "case 10: level lists no levels, so it never holds",
            "case 11: variable \"contact\" has is_set and is_phone; use one",
            "case 12: has no condition; set one of caller_known, level, business_hours, day, \
             time or variable",
            "case 12: is_phone is only for a variable",
        ];
        let expected: Vec<String> = expected
            .iter()
            .map(|m| format!("node \"start\": {m}"))
            .collect();
        assert_eq!(messages(&text), expected);
    }

    #[test]
    fn entries_are_checked_across_plans() {
        let a = parse(GOOD, "a.toml");
        let b = parse(&good_with("name = \"good\"", "name = \"copy\""), "b.toml");
        let problems = check(&[a, b], &|_| true);
        assert_eq!(
            problems,
            [Problem {
                file: "b.toml".into(),
                line: None,
                message: "entry \"10000\" is in both a.toml and b.toml".into(),
            }]
        );
        let text = good_with("entries = { \"10000\" = \"hours\" }", "entries = {}");
        assert_eq!(
            messages(&text),
            [
                "[dialplan] has no entries, so no call ever starts here; add one such as \
              entries = { \"10000\" = \"welcome\" }"
            ]
        );
    }

    #[test]
    fn ticket_lookups_need_a_number_only_by_number() {
        let text = good_with("number = \"${ticket_no}\"\n", "");
        assert_eq!(
            messages(&text),
            ["node \"lookup\": by = \"number\" needs a number (e.g. \"${ticket_no}\")"]
        );
        for by in ["caller", "caller_next"] {
            let text = good_with("by = \"number\"", &format!("by = \"{by}\""));
            assert_eq!(
                messages(&text),
                [
                    "node \"lookup\": by = \"caller\" and \"caller_next\" take no number: \
                     they find the caller's own tickets"
                ]
            );
        }
    }

    /// A survey plan: the score menu behind a check that a ticket is
    /// loaded; key 9 stores a literal score.
    const SURVEY: &str = r##"
[nodes.start]
kind = "branch"
cases = [{ variable = "ticket.number", is_set = true, goto = "rate" }]
else = "bye"

[nodes.rate]
kind = "menu"
say = ["rate"]
keys = { "4" = "four", "9" = "nine" }
on_failure = "bye"

[nodes.four]
kind = "set"
variable = "score"
value = "4"
next = "store"

[nodes.store]
kind = "ticket_survey"
score = "${score}"
next = "bye"
on_error = "bye"

[nodes.nine]
kind = "ticket_survey"
score = "9"
next = "bye"
on_error = "bye"

[nodes.bye]
kind = "hangup"
"##;

    #[test]
    fn a_literal_survey_score_must_be_1_to_5() {
        assert_eq!(
            messages(&plan(SURVEY)),
            ["node \"nine\": score \"9\" is not a digit 1 to 5"]
        );
        let text = plan(SURVEY).replace("score = \"9\"", "score = \"5\"");
        assert_eq!(messages(&text), Vec::<String>::new());
    }

    #[test]
    fn survey_score_variables_must_be_known() {
        let text = plan(SURVEY)
            .replace("score = \"9\"", "score = \"5\"")
            .replace("\"${score}\"", "\"${scor}\"");
        assert_eq!(
            messages(&text),
            [
                "node \"store\": score uses ${scor}, which is not a built-in variable nor set \
                 by any collect or set node; did you mean \"score\"?"
            ]
        );
    }

    #[test]
    fn a_ticket_action_reachable_without_a_ticket_is_reported() {
        let text = plan(
            r##"
[nodes.start]
kind = "menu"
say = ["welcome"]
keys = { "1" = "restored" }
on_failure = "bye"

[nodes.restored]
kind = "ticket_action"
action = "confirm"
next = "bye"
on_error = "bye"

[nodes.bye]
kind = "hangup"
"##,
        );
        assert_eq!(
            messages(&text),
            [
                "node \"restored\": can be reached from entry \"10000\" without a ticket; go \
              through a ticket lookup's found, a ticket_create, or a branch case such as \
              { variable = \"ticket.number\", is_set = true, goto = \"restored\" } first"
            ]
        );
    }

    #[test]
    fn a_survey_reachable_without_a_ticket_is_reported() {
        let text = plan(SURVEY)
            .replace("score = \"9\"", "score = \"5\"")
            .replace(
                "{ variable = \"ticket.number\", is_set = true, goto = \"rate\" }",
                "{ variable = \"transferred_by\", is_set = true, goto = \"rate\" }",
            );
        let reached = |node: &str| {
            format!(
                "node \"{node}\": can be reached from entry \"10000\" without a ticket; go \
                 through a ticket lookup's found, a ticket_create, or a branch case such as \
                 {{ variable = \"ticket.number\", is_set = true, goto = \"{node}\" }} first"
            )
        };
        assert_eq!(messages(&text), [reached("store"), reached("nine")]);
        // A lookup's found, or a branch on another ticket variable, is a
        // ticket too; its not_found is not.
        let looked_up = plan(SURVEY)
            .replace("score = \"9\"", "score = \"5\"")
            .replace(
                "kind = \"branch\"\ncases = [{ variable = \"ticket.number\", is_set = true, goto = \"rate\" }]\nelse = \"bye\"",
                "kind = \"ticket_lookup\"\nby = \"caller\"\nfound = \"check\"\nnot_found = \"bye\"\non_error = \"bye\"\n\n[nodes.check]\nkind = \"branch\"\ncases = [{ variable = \"ticket.status\", equals = \"closed\", goto = \"rate\" }]\nelse = \"rate\"",
            );
        assert_eq!(messages(&looked_up), Vec::<String>::new());
        let not_found = looked_up.replace("not_found = \"bye\"", "not_found = \"rate\"");
        assert_eq!(messages(&not_found), [reached("store"), reached("nine")]);
    }

    #[test]
    fn switching_to_an_unlisted_language_is_reported() {
        let text = plan(
            r##"
[nodes.start]
kind = "set_language"
language = "en"
next = "bye"

[nodes.bye]
kind = "hangup"
"##,
        );
        assert_eq!(
            messages(&text),
            [
                "node \"start\": switches to en, which is not in the plan's languages, so its \
              prompts are not checked"
            ]
        );
    }

    #[test]
    fn problems_are_sorted_by_file_and_line() {
        // Found in node order (lookup before main), reported in line order.
        let text = good_with("on_failure = \"goodbye\"", "on_failure = \"nowhere\"")
            .replace("not_found = \"main\"", "not_found = \"elsewhere\"");
        let problems = check(&[parse(&text, "t.toml")], &|_| true);
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(23), Some(41)]);
    }

    #[test]
    fn load_dir_checks_every_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10000.toml"), GOOD).unwrap();
        std::fs::write(dir.path().join("README.md"), "not a plan").unwrap();
        let prompts = all_prompts();
        let exists = |p: &str| prompts.contains(p);
        let plans = load_dir(dir.path(), &exists).unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].name, "good");

        let bad = good_with("\"10000\" = \"hours\"", "\"10001\" = \"hours\"").replacen(
            "on_failure = \"goodbye\"",
            "on_failure = \"goodbey\"",
            1,
        );
        std::fs::write(dir.path().join("10001.toml"), bad).unwrap();
        std::fs::write(dir.path().join("broken.toml"), "[dialplan\n").unwrap();
        let error = load_dir(dir.path(), &exists).unwrap_err();
        let file = |name: &str| dir.path().join(name).display().to_string();
        let lines: Vec<String> = error.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            lines[0],
            format!(
                "{} line 23: node \"main\" goes to \"goodbey\", which does not exist; \
                 did you mean \"goodbye\"?",
                file("10001.toml")
            )
        );
        assert!(
            lines[1].starts_with(&format!("{} line 1: ", file("broken.toml"))),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn load_dir_reports_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = load_dir(&missing, &|_| true).unwrap_err();
        assert_eq!(error.problems.len(), 1);
        assert_eq!(error.problems[0].file, missing.display().to_string());
        assert!(error.problems[0]
            .message
            .starts_with("cannot read the dialplan directory: "));
    }

    #[test]
    fn suggestions_use_edit_distance() {
        assert_eq!(levenshtein("confrim", "confirm"), 2);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        let names = ["confirm", "conform", "main"];
        assert_eq!(
            did_you_mean("confrim", names.into_iter()),
            "; did you mean \"confirm\"?"
        );
        assert_eq!(
            did_you_mean("mian", names.into_iter()),
            "; did you mean \"main\"?"
        );
        assert_eq!(did_you_mean("xyz", names.into_iter()), "");
    }
}
