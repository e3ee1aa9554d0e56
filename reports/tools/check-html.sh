#!/usr/bin/env bash
# Checks an mtp-cert HTML report in headless Chromium: the page's script runs to the end
# (it sets <body data-ready="1">) and raises no error (an injected window.onerror /
# console.error hook writes any error into the DOM, read back with --dump-dom; the
# Chromium log is grepped for "Uncaught" too). Optionally saves a screenshot.
#
#   reports/tools/check-html.sh REPORT.html [SCREENSHOT.png]
#
# Exit 0: clean; 1: a JS error or the script did not finish; 2: usage or no Chromium.
set -euo pipefail

report=${1:-}
shot=${2:-}
if [[ -z "$report" || ! -f "$report" ]]; then
  echo "usage: $0 REPORT.html [SCREENSHOT.png]" >&2
  exit 2
fi
chromium=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x "$chromium" ]]; then
  echo "check-html: $chromium not found (apt-get install -y chromium, or set CHROMIUM)" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The hook goes first in <head>, before the report's own script. Its marker is assembled at
# run time so that the hook's own source never matches.
hook='<script>(function(){function note(m){var d=document.getElementById("__js_errors__");if(!d){d=document.createElement("pre");d.id="__js_errors__";(document.body||document.documentElement).appendChild(d);}d.textContent+="[js-"+"error] "+m+String.fromCharCode(10);}window.addEventListener("error",function(e){note((e.message||"error")+" at "+(e.filename||"")+":"+(e.lineno||0));});window.addEventListener("unhandledrejection",function(e){note("unhandled rejection: "+e.reason);});var ce=console.error;console.error=function(){note(Array.prototype.join.call(arguments," "));return ce.apply(console,arguments);};})();</script>'
page="$work/page.html"
awk -v hook="$hook" '{ print } /<head>/ && !done { print hook; done = 1 }' "$report" >"$page"
if ! grep -q '__js_errors__' "$page"; then
  echo "check-html: $report has no <head>" >&2
  exit 1
fi

flags=(--headless --disable-gpu --no-sandbox --no-first-run --no-default-browser-check
  --disable-extensions --disable-background-networking --enable-logging=stderr --v=0
  --user-data-dir="$work/profile" --window-size=1280,900 --virtual-time-budget=5000)

status=0
"$chromium" "${flags[@]}" --dump-dom "file://$page" >"$work/dom.html" 2>"$work/dom.log" || status=$?
if [[ $status -ne 0 ]]; then
  echo "check-html: chromium --dump-dom exited $status" >&2
  tail -n 20 "$work/dom.log" >&2
  exit 1
fi

fail=0
if grep -qF '[js-error]' "$work/dom.html"; then
  echo "check-html: JavaScript errors:" >&2
  grep -o '\[js-error\] [^<]*' "$work/dom.html" >&2
  fail=1
fi
if grep -E 'Uncaught|CONSOLE\([0-9]+\).*[Ee]rror|Refused to (load|execute|apply)' "$work/dom.log" >&2; then
  echo "check-html: errors in the Chromium console log" >&2
  fail=1
fi
if ! grep -q 'data-ready="1"' "$work/dom.html"; then
  echo "check-html: the report's script did not run to the end (no data-ready)" >&2
  fail=1
fi

if [[ -n "$shot" ]]; then
  mkdir -p "$(dirname "$shot")"
  abs_shot=$(cd "$(dirname "$shot")" && pwd)/$(basename "$shot")
  # Screenshot the report itself (without the hook; same rendering).
  "$chromium" "${flags[@]}" --hide-scrollbars --screenshot="$abs_shot" "file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")" \
    >"$work/shot.log" 2>&1 || {
    echo "check-html: screenshot failed" >&2
    tail -n 20 "$work/shot.log" >&2
    exit 1
  }
  [[ -s "$abs_shot" ]] || { echo "check-html: no screenshot written" >&2; exit 1; }
  echo "check-html: screenshot $abs_shot"
fi

if [[ $fail -ne 0 ]]; then
  exit 1
fi
echo "check-html: $report OK (script ran, no console errors)"
