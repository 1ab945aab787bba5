"""Drives the web console in headless Chromium (Debian's chromium and
chromedriver, through Selenium's WebDriver client; nothing is downloaded).

    console_browser.py BASE_URL AGENT_TOKEN SUPERVISOR_TOKEN TICKET SCREENS_DIR

As the agent: logs in with the token, finds the ticket on the board
under new, opens it, dispatches, accepts and resolves it with the page's buttons, and
checks that the page then lists the customer's "resolved" text as queued
(pending) in its outbox table and in the timeline, that the description
(which holds a <script> tag) shows as text, and that the CSRF token is in
every form; back on the board it is under resolved. As the supervisor: opens the dashboard and checks its charts.
Screenshots: board.png, ticket.png and dashboard.png in SCREENS_DIR. Any
error in the browser's console (a script error, a resource refused by the
Content-Security-Policy) fails the run. Exit status 0 only if every check
held.
"""

import os
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WAIT_SECS = 15


def log(text):
    print(f"[browser] {text}", flush=True)


def fail(text):
    log(f"FAIL: {text}")
    sys.exit(1)


def browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_SECS)
    return driver


def console_errors(driver):
    """Errors the page logged: script errors, CSP refusals, failed loads."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def login(driver, base, token):
    driver.get(f"{base}/console/login")
    driver.find_element(By.NAME, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    WebDriverWait(driver, WAIT_SECS).until(ec.url_contains("/console/board"))


def logout(driver):
    driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    WebDriverWait(driver, WAIT_SECS).until(ec.url_contains("/console/login"))


def check_forms_carry_csrf(driver):
    for form in driver.find_elements(By.CSS_SELECTOR, "form[method=post]"):
        if not form.find_elements(By.CSS_SELECTOR, "input[type=hidden][name=csrf]"):
            fail(f"a form to {form.get_attribute('action')} has no CSRF token")


def gone(element):
    """Whether `element` has left the document. Chromium 156's driver
    sometimes answers a detached node with an 'unknown error' ("Node with
    given id does not belong to the document") instead of a stale element
    reference: both mean the page was replaced."""
    def check(_driver):
        try:
            element.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
    return check


def act(driver, action):
    button = driver.find_element(By.CSS_SELECTOR, f"form.transition button[value={action}]")
    button.click()
    WebDriverWait(driver, WAIT_SECS).until(gone(button))
    status = driver.find_element(By.CSS_SELECTOR, "dd.status").get_attribute("data-status")
    log(f"{action}: the ticket is now {status}")
    return status


def run(base, agent, supervisor, ticket, screens):
    os.makedirs(screens, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile)
        try:
            login(driver, base, agent)
            log("logged in as the agent")
            card = driver.find_element(By.CSS_SELECTOR, f'section[data-status=new] article[data-number="{ticket}"]')
            countdown = card.find_element(By.CSS_SELECTOR, "time.countdown").text
            log(f"the ticket is on the board under new, next deadline {countdown!r}")
            if not countdown.startswith("in "):
                fail(f"the countdown reads {countdown!r}")
            check_forms_carry_csrf(driver)

            card.find_element(By.CSS_SELECTOR, "a.number").click()
            WebDriverWait(driver, WAIT_SECS).until(ec.url_contains(f"/console/tickets/{ticket}"))
            description = driver.find_element(By.CSS_SELECTOR, "dd.description").text
            if "<script>" not in description:
                fail(f"the description should show its <script> tag as text, shows {description!r}")
            check_forms_carry_csrf(driver)
            for action, expected in (("dispatch", "dispatched"), ("accept", "accepted"), ("resolve", "resolved")):
                if act(driver, action) != expected:
                    fail(f"{action} did not lead to {expected}")

            rows = driver.find_elements(By.CSS_SELECTOR, "#outbox tr.notification[data-kind=resolved]")
            if not rows:
                fail("no 'resolved' text in the outbox table after resolving")
            status = rows[0].get_attribute("data-status")
            body = rows[0].find_element(By.CSS_SELECTOR, "td.body").text
            log(f"the customer's text is queued ({status}): {body!r}")
            if status != "pending" or ticket not in body:
                fail("the resolved text should be pending and name the ticket")
            timeline = driver.find_element(By.CSS_SELECTOR, "ol.timeline").text
            if "SMS queued to 13800138000 (resolved, pending)" not in timeline:
                fail(f"the timeline does not show the queued text: {timeline!r}")
            driver.save_screenshot(os.path.join(screens, "ticket.png"))

            driver.get(f"{base}/console/dashboard")
            if "Forbidden" not in driver.title:
                fail(f"an agent should not see the dashboard (title {driver.title!r})")
            errors = [e for e in console_errors(driver) if "/console/dashboard" not in e.get("message", "")]
            if errors:
                fail(f"the browser logged errors: {errors}")
            driver.get(f"{base}/console/board")
            driver.find_element(By.CSS_SELECTOR, f'section[data-status=resolved] article[data-number="{ticket}"]')
            log("the board shows the ticket under resolved")
            driver.save_screenshot(os.path.join(screens, "board.png"))
            logout(driver)

            login(driver, base, supervisor)
            log("logged in as the supervisor")
            driver.get(f"{base}/console/dashboard")
            charts = driver.find_elements(By.CSS_SELECTOR, "section.chart svg")
            if len(charts) < 6:
                fail(f"the dashboard shows {len(charts)} charts")
            created = driver.find_element(By.CSS_SELECTOR, ".figures").text
            log(f"dashboard: {len(charts)} charts; figures {created!r}")
            driver.save_screenshot(os.path.join(screens, "dashboard.png"))
            errors = console_errors(driver)
            if errors:
                fail(f"the browser logged errors: {errors}")
        finally:
            driver.quit()
    log("PASS")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    run(*sys.argv[1:])
