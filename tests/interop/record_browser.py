"""Plays a ticket's recording in the web console, in headless Chromium
(the helpers of console_browser.py: Debian's chromium and chromedriver
through Selenium).

    record_browser.py BASE_URL AGENT_TOKEN TICKET SCREENS_DIR

Logs in as the agent, opens the ticket, finds one player under
Recordings, loads its audio (the browser fetches it with range requests
through the console's own route and its Content-Security-Policy) and
waits for its metadata: a duration of more than a second. Reloads the
page: the play is on the timeline as `recording_played` by the agent.
Any error in the browser's console fails the run. Screenshot:
recording.png in SCREENS_DIR. Exit status 0 only if every check held.
"""

import os
import sys
import tempfile

from console_browser import WAIT_SECS, browser, console_errors, fail, log, login
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def run(base, agent, ticket, screens):
    os.makedirs(screens, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile)
        try:
            login(driver, base, agent)
            driver.get(f"{base}/console/tickets/{ticket}")
            players = driver.find_elements(By.CSS_SELECTOR, "#recordings audio")
            if len(players) != 1:
                fail(f"{len(players)} players under Recordings, expected 1")
            player = players[0]
            src = player.get_attribute("src")
            log(f"player: {src}")
            driver.execute_script("arguments[0].load();", player)
            WebDriverWait(driver, WAIT_SECS).until(
                lambda d: d.execute_script("return arguments[0].readyState;", player) >= 1
            )
            duration = driver.execute_script("return arguments[0].duration;", player)
            log(f"the audio loaded: {duration:.2f} s")
            if not duration or duration < 1:
                fail(f"the player's duration is {duration}")
            driver.save_screenshot(os.path.join(screens, "recording.png"))
            errors = console_errors(driver)
            if errors:
                fail(f"the browser logged errors: {errors}")
            driver.get(f"{base}/console/tickets/{ticket}")
            timeline = driver.find_element(By.CSS_SELECTOR, "ol.timeline").text
            if "recording_played" not in timeline or "staff:li.na" not in timeline:
                fail("the play is not on the timeline")
            log("the play is on the timeline")
        finally:
            driver.quit()
    log("PASS")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    run(*sys.argv[1:])
