"""Static checks in `make test`: bandit finds no high-severity issue in foodapp's code, and
pip-audit finds no known vulnerability in the installed packages (the .venv).

pip-audit needs a vulnerability service (PyPI's JSON API, or OSV): this test asks PyPI's
and skips, saying why, when it cannot audit (no network, or an index mirror without the
JSON API: every package then comes back "not found on PyPI" and nothing is audited).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_bandit_finds_no_high_severity_issue():
    # -lll: high severity only; -r: foodapp (the web app, workers' middleware) and actors.
    result = subprocess.run([BIN / "bandit", "-r", "foodapp", "actors", "-lll", "-f", "json", "-q"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.stdout, f"bandit printed nothing (exit {result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    assert not report["errors"], f"bandit could not read some files: {report['errors']}"
    high = [f"{issue['filename']}:{issue['line_number']}: {issue['test_id']} {issue['issue_text']}"
            for issue in report["results"] if issue["issue_severity"] == "HIGH"]
    assert not high, "bandit: high-severity findings:\n" + "\n".join(high)
    assert result.returncode == 0, result.stderr[-2000:]
    assert report["metrics"]["_totals"]["loc"] > 1000, "bandit scanned almost nothing: are the paths right?"


def test_pip_audit_finds_no_known_vulnerability_in_the_installed_packages():
    # -l: this virtualenv's packages only; foodapp itself (editable) is not on PyPI.
    try:
        result = subprocess.run([BIN / "pip-audit", "-l", "--skip-editable", "-f", "json", "--progress-spinner", "off",
                                 "--timeout", "20"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("pip-audit: the vulnerability service (PyPI's JSON API) did not answer within 600 s; not audited")
    if not result.stdout.strip():
        if "ConnectionError" in result.stderr or "Max retries" in result.stderr or "NameResolution" in result.stderr:
            pytest.skip("pip-audit: the vulnerability service (PyPI's JSON API) is unreachable from this machine; "
                        f"not audited ({result.stderr.strip().splitlines()[-1][:300]})")
        pytest.fail(f"pip-audit failed (exit {result.returncode}): {result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    audited = [dep for dep in report["dependencies"] if "skip_reason" not in dep]
    if not audited:
        pytest.skip(f"pip-audit could audit none of the {len(report['dependencies'])} installed packages: "
                    f"PyPI's JSON API answered 'not found' for each (an index mirror without it?), e.g. "
                    f"{report['dependencies'][0]['skip_reason'] if report['dependencies'] else 'no packages'}")
    vulnerable = [f"{dep['name']} {dep['version']}: " + ", ".join(
        f"{vuln['id']} (fixed in {', '.join(vuln['fix_versions']) or 'no release yet'})" for vuln in dep["vulns"])
        for dep in audited if dep.get("vulns")]
    assert not vulnerable, "pip-audit: known vulnerabilities in installed packages:\n" + "\n".join(vulnerable)
