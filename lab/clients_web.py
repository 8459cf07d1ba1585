"""A student at a browser: real headless Chromium driven by selenium, run *inside* a lab
host (``python -m lab.clients_web webmail JSON``), like ``lab.clients``.

It logs into Roundcube, composes and sends, opens the inbox, reads a message and logs
out, taking a screenshot (PNG) of each stage into the folder it is given (the run's
state, which the harness sees).  The browser trusts exactly the run's CAs (an NSS
database in a per-run HOME), reaches nothing but the lab (no background networking,
no component updates, no sync), and writes its TLS secrets to the run's key log when
asked, so the captures of port 443 can be read.  It prints one JSON object: each
stage's result and time, the screenshots, and the error the browser showed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--no-first-run",
    "--no-default-browser-check",
    "--password-store=basic",
    "--window-size=1280,860",
)
CERT_ERROR = re.compile(r"(NET::)?ERR_[A-Z_]+")


def trust_store(home: Path, ca_bundle: str) -> None:
    """An NSS database in ``home`` trusting every CA of the run's bundle (and nothing else)."""
    db = home / ".pki" / "nssdb"
    if (db / "cert9.db").exists():
        return
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True, capture_output=True)
    pems = re.findall(
        rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", Path(ca_bundle).read_bytes(), re.S
    )
    for k, pem in enumerate(pems):
        subprocess.run(
            ["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", f"lab-ca-{k}"],
            input=pem,
            check=True,
            capture_output=True,
        )


class Session:
    def __init__(self, p: dict[str, Any]):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.p = p
        self.shots: list[dict[str, Any]] = []
        self.stages: list[dict[str, Any]] = []
        self.dir = Path(p["shots"])
        self.dir.mkdir(parents=True, exist_ok=True)
        home = Path(p["home"])
        home.mkdir(parents=True, exist_ok=True)
        trust_store(home, p["ca_file"])
        os.environ["HOME"] = str(home)
        if p.get("keylog"):
            os.environ["SSLKEYLOGFILE"] = p["keylog"]
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={home / 'profile'}")
        svc = Service(executable_path="/usr/bin/chromedriver", log_path=str(home / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=svc, options=opts)
        self.driver.set_page_load_timeout(p.get("timeout", 30))

    def shot(self, stage: str) -> None:
        f = self.dir / f"{len(self.shots) + 1:02d}-{stage}.png"
        try:
            f.write_bytes(self.driver.get_screenshot_as_png())
            self.shots.append({"stage": stage, "file": str(f)})
        except Exception as exc:  # a screenshot never hides the real result
            self.shots.append({"stage": stage, "error": f"{type(exc).__name__}: {exc}"})

    def stage(self, name: str, t0: float, ok: bool, **extra: Any) -> None:
        self.stages.append({"stage": name, "ok": ok, "seconds": round(time.monotonic() - t0, 3), **extra})

    def wait(self, css: str, timeout: float | None = None) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout or self.p.get("timeout", 30)).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    def text(self) -> str:
        try:
            return str(self.driver.execute_script("return document.body ? document.body.innerText : ''"))
        except Exception:
            return ""

    def notices(self) -> str:
        """The text of Roundcube's message stack (notices and errors), tolerating a page that changes."""
        try:
            return str(
                self.driver.execute_script(
                    "var m = document.getElementById('messagestack'); return m ? m.innerText : ''"
                )
            ).strip()
        except Exception:
            return ""

    def quit(self) -> None:
        try:
            self.driver.quit()
        except Exception:
            pass


def _page_error(s: Session, fallback: str) -> str:
    m = CERT_ERROR.search(s.text()) or CERT_ERROR.search(fallback)
    return m.group(0) if m else (fallback.strip().splitlines() or ["error"])[0][:300]


def _login(s: Session, out: dict[str, Any]) -> bool:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    p, d = s.p, s.driver
    t0 = time.monotonic()
    out["stage"] = "connect"
    try:
        d.get(p["url"])
    except WebDriverException as exc:
        out["error"] = _page_error(s, str(exc))
        s.shot("connect")
        s.stage("connect", t0, False, error=out["error"])
        return False
    deadline = time.monotonic() + 15
    while not d.find_elements(By.ID, "rcmloginuser"):
        page = s.text()
        m = CERT_ERROR.search(page)
        if m or time.monotonic() > deadline:  # the browser's own error page, or nothing
            out["error"] = m.group(0) if m else "no login form within 15 s"
            out["page"] = page[:600]
            s.shot("connect")
            s.stage("connect", t0, False, error=out["error"])
            return False
        time.sleep(0.1)
    out["title"] = d.title
    out["url"] = d.current_url
    s.shot("login-page")
    s.stage("connect", t0, True)
    t0 = time.monotonic()
    out["stage"] = "login"
    d.find_element(By.ID, "rcmloginuser").send_keys(p["login"])
    d.find_element(By.ID, "rcmloginpwd").send_keys(p["password"])
    d.find_element(By.ID, "rcmloginsubmit").click()
    deadline = time.monotonic() + p.get("timeout", 30)
    while time.monotonic() < deadline:
        if d.find_elements(By.CSS_SELECTOR, "#messagelist"):
            s.shot("inbox")
            s.stage("login", t0, True)
            out["logged_in_at"] = time.monotonic()
            return True
        msg = s.notices()
        # an answer to the login is a notice on the login page ("Loading..." is progress)
        still_login = bool(d.find_elements(By.ID, "rcmloginuser"))
        if msg and still_login and not re.search(r"loading", msg, re.I):
            out["error"] = msg.strip()
            s.shot("login-refused")
            s.stage("login", t0, False, error=out["error"])
            return False
        time.sleep(0.1)
    out["error"] = "neither the inbox nor an error appeared"
    s.shot("login-timeout")
    s.stage("login", t0, False, error=out["error"])
    return False


def _send(s: Session, out: dict[str, Any]) -> bool:
    from selenium.webdriver.common.by import By

    p, d = s.p, s.driver
    t0 = time.monotonic()
    out["stage"] = "compose"
    d.get(p["base"] + "?_task=mail&_action=compose")
    s.wait("#compose-subject")
    rcpt = s.wait("ul.recipient-input input")
    rcpt.send_keys(", ".join(p["to"]) + ",")
    d.find_element(By.ID, "compose-subject").send_keys(p["subject"])
    d.find_element(By.ID, "composebody").send_keys(p["body"])
    s.shot("compose")
    out["stage"] = "send"
    d.find_element(By.CSS_SELECTOR, "button.send").click()
    deadline = time.monotonic() + p.get("timeout", 30)
    while time.monotonic() < deadline:
        msg = s.notices()
        if "compose" not in d.current_url or re.search(r"sent successfully", msg, re.I):
            s.stage("send", t0, True, notice=msg)
            out["sent_at"] = time.monotonic()
            s.shot("sent")
            return True
        if msg and re.search(r"error|fail|invalid|refused", msg, re.I):
            out["error"] = msg
            s.shot("send-failed")
            s.stage("send", t0, False, error=msg)
            return False
        time.sleep(0.05)
    out["error"] = "the message was not sent within the timeout"
    s.shot("send-timeout")
    s.stage("send", t0, False, error=out["error"])
    return False


def _read(s: Session, out: dict[str, Any]) -> bool:
    from selenium.webdriver.common.by import By

    p, d = s.p, s.driver
    t0 = time.monotonic()
    out["stage"] = "read"
    d.get(p["base"] + "?_task=mail&_mbox=INBOX")
    s.wait("#messagelist tbody tr")
    rows = d.find_elements(By.CSS_SELECTOR, "#messagelist tbody tr")
    out["inbox"] = [r.text.replace("\n", " | ")[:200] for r in rows]
    row = next((r for r in rows if p["read"] in r.text), None)
    if row is None:
        out["error"] = f"no message with subject {p['read']!r} in the inbox ({len(rows)} message(s))"
        s.shot("inbox-without-message")
        s.stage("read", t0, False, error=out["error"])
        return False
    # the row id is "rcmrow" + the uid in Roundcube's URL-safe base64 (html_identifier)
    enc = (row.get_attribute("id") or "").removeprefix("rcmrow")
    uid = base64.urlsafe_b64decode(enc + "=" * (-len(enc) % 4)).decode()
    d.get(p["base"] + f"?_task=mail&_mbox=INBOX&_uid={uid}&_action=show")
    body = s.wait("#messagebody")
    out["read_subject"] = p["read"]
    out["read_body"] = body.text[:2000]
    s.shot("read")
    s.stage("read", t0, True)
    return True


def _logout(s: Session, out: dict[str, Any]) -> bool:
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.common.by import By

    t0 = time.monotonic()
    out["stage"] = "logout"
    d = s.driver
    d.get(s.p["base"] + "?_task=mail&_mbox=INBOX")
    s.wait("#messagelist")
    ready = "return !!(window.rcmail && rcmail.message_list && rcmail.env.request_token)"
    deadline = time.monotonic() + 10
    while not d.execute_script(ready) and time.monotonic() < deadline:  # Roundcube's scripts started
        time.sleep(0.05)
    try:
        d.find_element(By.CSS_SELECTOR, "a.logout").click()
        s.wait("#rcmloginuser", 3)
    except (TimeoutException, WebDriverException):
        # the click met a page still busy: log out the way the link does, with the page's token
        token = d.execute_script("return window.rcmail ? rcmail.env.request_token : ''")
        d.get(s.p["base"] + f"?_task=logout&_token={token}")
        try:
            s.wait("#rcmloginuser", 5)
        except TimeoutException:
            out["error"] = "the logout did not bring back the login form"
            s.shot("logout-failed")
            s.stage("logout", t0, False, error=out["error"])
            return False
    s.shot("logged-out")
    s.stage("logout", t0, True)
    return True


def http_redirect(url: str) -> dict[str, Any]:
    """What plain HTTP answers (the webmail must redirect to HTTPS, never serve a form)."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    try:
        c = http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=5)
        c.request("GET", u.path or "/")
        r = c.getresponse()
        out = {"status": r.status, "location": r.getheader("Location")}
        c.close()
        return out
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def webmail(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "stage": "start"}
    t0 = time.monotonic()
    if p.get("http_url"):
        out["http"] = http_redirect(p["http_url"])
    try:
        s = Session(p)
    except Exception as exc:
        out["error"] = f"the browser did not start: {type(exc).__name__}: {str(exc)[:500]}"
        return out
    out["browser_started"] = round(time.monotonic() - t0, 3)
    try:
        ok = _login(s, out)
        if ok and p.get("to"):
            ok = _send(s, out)
        if ok and p.get("read"):
            ok = _read(s, out)
        if ok:
            ok = _logout(s, out)
        out["ok"] = ok
        if ok:
            out["stage"] = "done"
        if out.get("sent_at") and out.get("logged_in_at"):
            out["login_to_sent"] = round(out["sent_at"] - out["logged_in_at"] + s.stages[1]["seconds"], 3)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        out["error"] = f"{type(exc).__name__} at {out.get('stage')}: {first[:300]}"
        s.shot("error")
    finally:
        s.quit()
    out.pop("sent_at", None)
    out.pop("logged_in_at", None)
    out["stages"] = s.stages
    out["screenshots"] = s.shots
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


KINDS = {"webmail": webmail}


def main(argv: list[str]) -> int:
    result = KINDS[argv[0]](json.loads(argv[1]))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
