//! The run's picture (`--report`): a small chain built on the real engine, its report opened in
//! headless Chromium through Selenium (scripts/setup-browser.sh installs both; the browser's
//! side is tests/timeline_browser.py), and the report of runs that fail or are interrupted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::engine::{Namespace, engine_lock};
use crate::reliability::{Running, busybox_image, busybox_tree, engine_args};
use crate::support::{BIN, REPO, Test};

/// (outcome, critical) of each bar of a report, by image, read from its HTML.
fn bars_of(html: &str) -> BTreeMap<String, (String, bool)> {
    let re = regex::Regex::new(
        r#"<g class="[^"]*" data-image="([^"]*)" data-outcome="([^"]*)" data-critical="(true|false)""#,
    )
    .unwrap();
    re.captures_iter(html)
        .map(|c| (c[1].to_string(), (c[2].to_string(), &c[3] == "true")))
        .collect()
}

/// Runs tests/timeline_browser.py on `report` with the venv of scripts/setup-browser.sh.
fn open_in_chromium(report: &Path, screenshot: &Path, click: &str) -> Value {
    let python = Path::new(REPO).join("target/browser-venv/bin/python");
    assert!(
        python.exists(),
        "no Selenium venv at {}: run scripts/setup-browser.sh (scripts/test.sh does)",
        python.display()
    );
    let out = Command::new(&python)
        .arg(Path::new(REPO).join("tests/timeline_browser.py"))
        .arg(report)
        .arg(screenshot)
        .arg(click)
        .output()
        .expect("run the browser script");
    assert!(
        out.status.success(),
        "the browser script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the browser script prints JSON")
}

#[test]
fn a_failed_chain_draws_one_bar_per_image_and_its_critical_path_in_a_real_browser() {
    let _lock = engine_lock();
    busybox_image();
    let ns = Namespace::new("timeline");
    // base ← mid ← leaf is the longest chain (two 2 s sleeps); side is quick; broken fails and
    // its child is not built.
    let test = busybox_tree(&[
        ("mid", "RUN sleep 2 && echo mid > /mid"),
        ("side", "RUN echo side > /side"),
        ("broken", "RUN echo about to fail && exit 3"),
    ]);
    test.write(
        "images/leaf/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}mid:{{ tag }}\nRUN sleep 2 && echo leaf > /leaf\n",
    );
    test.write(
        "images/broken-child/Dockerfile.j2",
        "FROM {{ namespace }}/{{ image_prefix }}broken:{{ tag }}\n",
    );
    let mut args = engine_args(&ns.0);
    args.extend(
        [
            "--retries",
            "0",
            "--summary-json-file",
            "summary.json",
            "--report",
            "report.html",
        ]
        .map(String::from),
    );
    let out = Command::new(BIN)
        .args(&args)
        .current_dir(test.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "broken fails the run:\n{stderr}"
    );

    let summary: Value = serde_json::from_str(&test.read("summary.json")).unwrap();
    let leaf = summary["built"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "leaf")
        .unwrap();
    assert_eq!(leaf["parents"], serde_json::json!(["mid"]), "{summary}");
    let (queued, started, finished) = (
        leaf["queued_at"].as_f64().unwrap(),
        leaf["started_at"].as_f64().unwrap(),
        leaf["finished_at"].as_f64().unwrap(),
    );
    assert!(queued <= started && finished - started >= 2.0, "{leaf}");
    let timing = &summary["timing"];
    assert!(
        timing["wall_seconds"].as_f64().unwrap() >= finished,
        "{timing}"
    );
    assert!(timing["cpu_seconds"].as_f64().is_some(), "{timing}");
    assert_eq!(timing["engines"][0]["threads"], 8, "{timing}");

    // The earlier run's subcommand draws the same page from the summary.
    let again = Command::new(BIN)
        .args(["report", "summary.json", "-o", "again.html"])
        .current_dir(test.path())
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    let html = test.read("report.html");
    assert_eq!(test.read("again.html"), html);

    let screenshot = Path::new(REPO).join("target/timeline-report.png");
    let page = open_in_chromium(&test.path().join("report.html"), &screenshot, "leaf");
    assert_eq!(page["console"], serde_json::json!([]), "console: {page}");
    assert_eq!(
        page["resources"],
        serde_json::json!([]),
        "resources: {page}"
    );
    let requests: Vec<&str> = page["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        requests.iter().all(|r| *r == page["url"]),
        "the page asked for more than itself: {requests:?}"
    );
    let bars: BTreeMap<String, (String, bool)> = page["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b[0].as_str().unwrap().to_string(),
                (b[1].as_str().unwrap().to_string(), b[2].as_bool().unwrap()),
            )
        })
        .collect();
    let want: BTreeMap<String, (String, bool)> = [
        ("base", "built", true),
        ("mid", "built", true),
        ("leaf", "built", true),
        ("side", "built", false),
        ("broken", "failed", false),
        ("broken-child", "parent-failed", false),
    ]
    .into_iter()
    .map(|(n, o, c)| (n.to_string(), (o.to_string(), c)))
    .collect();
    assert_eq!(
        bars, want,
        "one bar per selected image, as the browser sees them"
    );
    assert_eq!(bars_of(&html), want, "and as the file says");
    assert_eq!(
        page["ancestors"],
        serde_json::json!(["base", "mid"]),
        "{page}"
    );
    assert!(
        page["details"].as_str().unwrap().contains("parent: mid"),
        "{page}"
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a screenshot was kept"
    );
}

#[test]
fn an_interrupted_run_writes_its_report_with_what_happened() {
    let _lock = engine_lock();
    busybox_image();
    let ns = Namespace::new("timeline-int");
    let test = busybox_tree(&[("slow", "RUN sleep 60")]);
    let mut args = engine_args(&ns.0);
    args.extend(["--report", "report.html"].map(String::from));
    let run = Running::start(test.path(), &args, &[]);
    run.wait_for(&["Building", "slow"], Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(1));
    run.signal("TERM");
    let (code, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, Some(143), "{stderr}");
    let html = test.read("report.html");
    assert!(html.contains("<span class=\"status interrupted\">interrupted</span>"));
    let bars = bars_of(&html);
    assert_eq!(bars["base"], ("built".to_string(), true), "{bars:?}");
    assert_eq!(bars["slow"].0, "cancelled", "{bars:?}");
    assert!(
        html.contains("slow: cancelled\nbuild "),
        "the cancelled build took a slot until the signal"
    );
}

#[test]
fn a_run_that_cannot_reach_its_engine_still_writes_its_report() {
    let test = Test::small_tree();
    let out = Command::new(BIN)
        .args([
            "--engine-url",
            "unix:///nonexistent/kolla-build-test.sock",
            "--format",
            "none",
            "--report",
            "report.html",
            "keystone",
        ])
        .current_dir(test.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let html = test.read("report.html");
    assert!(
        html.contains("<span class=\"status error\">error</span>"),
        "{html}"
    );
    // Every selected image is listed as not built.
    let bars = bars_of(&html);
    assert_eq!(bars.len(), 4, "{bars:?}");
    assert!(
        bars.values().all(|(o, c)| o == "not-built" && !c),
        "{bars:?}"
    );
    // Bad settings, before any image is known: the report still says why.
    let out = Command::new(BIN)
        .args(["--threads", "0", "--format", "none", "--report", "bad.html"])
        .current_dir(test.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(test.read("bad.html").contains("class=\"error\""));
}
