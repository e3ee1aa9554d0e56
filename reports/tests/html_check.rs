//! Runs `reports/tools/check-html.sh` on the fixture report in headless Chromium: the page's
//! script must finish without a console error. Skipped (with a note) when Chromium is not
//! installed; `MTP_REQUIRE_CHROMIUM=1` turns the skip into a failure. With
//! `MTP_REPORT_SCREENSHOT=FILE.png` the fixture report's screenshot is saved there (this is
//! how `docs/img/report-summary.png` is made).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn chromium() -> Option<String> {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Path::new(&path).exists() {
        Some(path)
    } else {
        assert!(
            std::env::var_os("MTP_REQUIRE_CHROMIUM").is_none(),
            "MTP_REQUIRE_CHROMIUM is set but {path} is missing"
        );
        eprintln!("skipped: {path} not found");
        None
    }
}

fn check(html: &str, screenshot: Option<&str>) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/check-html.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(&page);
    if let Some(s) = screenshot {
        cmd.arg(s);
    }
    cmd.output().unwrap()
}

#[test]
fn fixture_report_runs_without_console_errors() {
    if chromium().is_none() {
        return;
    }
    let html = mtp_reports::html::render(&common::fixture(), None, &BTreeMap::new());
    let shot = std::env::var("MTP_REPORT_SCREENSHOT").ok();
    let out = check(&html, shot.as_deref());
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_check_catches_a_script_error() {
    if chromium().is_none() {
        return;
    }
    let html = mtp_reports::html::render(&common::fixture(), None, &BTreeMap::new())
        .replace("'use strict';", "'use strict'; undefinedFunction();");
    let out = check(&html, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("undefinedFunction"));
}

/// Loads `html` with a probe script appended to the body and returns the DOM after it ran.
fn dump_dom(html: &str, probe: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let html = html.replace("</body>", &format!("<script>{probe}</script></body>"));
    std::fs::write(&page, html).unwrap();
    let out = Command::new(chromium().unwrap())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=5000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn filters_hide_rows_by_layer_and_verdict() {
    if chromium().is_none() {
        return;
    }
    let html = mtp_reports::html::render(&common::fixture(), None, &BTreeMap::new());
    let probe = r#"
      function visible() {
        var n = 0, rows = document.querySelectorAll('tr[data-shown]');
        for (var i = 0; i < rows.length; i++) { if (!rows[i].hidden) { n++; } }
        return n;
      }
      function set(id, v) {
        var s = document.getElementById(id); s.value = v;
        s.dispatchEvent(new Event('change'));
      }
      var out = [visible()];
      set('f-layer', 'negotiation'); out.push(visible());
      set('f-verdict', 'error'); out.push(visible());
      set('f-layer', ''); set('f-verdict', 'warning'); out.push(visible());
      out.push(document.getElementById('s-DISC-QUERY-LATENCY-001').hidden ? 'h' : 'v');
      out.push(document.getElementById('s-DISC-OFFER-SIG-001').hidden ? 'h' : 'v');
      out.push(document.getElementById('f-count').textContent);
      document.body.setAttribute('data-probe', out.join('|'));
    "#;
    let dom = dump_dom(&html, probe);
    assert!(
        dom.contains(r#"data-probe="6|3|1|1|v|h|1 of 6 scenarios shown""#),
        "{}",
        dom.lines()
            .find(|l| l.contains("data-probe"))
            .unwrap_or("no probe")
    );
    assert!(dom.contains("data-ready=\"1\""));
}
