"""Opens a kolla-build report in headless Chromium (tests/timeline.rs runs this with the venv of
scripts/setup-browser.sh) and prints what the page did as one JSON object: the browser's console
entries, every network request, the bars (image, outcome, critical), which bars clicking one
image marks as its ancestors. Saves a screenshot of the whole page.

usage: timeline_browser.py REPORT.html SCREENSHOT.png CLICK_IMAGE
(SCREENSHOT.png as it opens; SCREENSHOT-selected.png once CLICK_IMAGE is clicked)
"""

import json
import pathlib
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def main():
    report, screenshot, click = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3]
    options = webdriver.ChromeOptions()
    # Debian's browser and driver: Selenium must not fetch its own.
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,900",
                "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        url = report.as_uri()
        driver.get(url)
        bars = driver.execute_script(
            "return Array.from(document.querySelectorAll('g[data-image]')).map(function (g) {"
            " return [g.getAttribute('data-image'), g.getAttribute('data-outcome'),"
            " g.getAttribute('data-critical') === 'true']; });")
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(function (e) { return e.name; });")
        # The whole page in the screenshot: the window as tall and wide as the document.
        width = driver.execute_script("return document.documentElement.scrollWidth;")
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(max(width, 1500) + 40, height + 140)
        driver.save_screenshot(screenshot)
        driver.find_element(By.CSS_SELECTOR, 'g[data-image="%s"]' % click).click()
        marked = driver.execute_script(
            "return Array.from(document.querySelectorAll('g.bar.ancestor'))"
            ".map(function (g) { return g.getAttribute('data-image'); });")
        details = driver.find_element(By.ID, "details").text
        driver.save_screenshot(screenshot.replace(".png", "-selected.png"))
        console = [{"level": e["level"], "message": e["message"]} for e in driver.get_log("browser")]
        requests = []
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                requests.append(message["params"]["request"]["url"])
        print(json.dumps({
            "url": url,
            "title": driver.title,
            "bars": bars,
            "resources": resources,
            "console": console,
            "requests": requests,
            "ancestors": sorted(marked),
            "details": details,
        }))
    finally:
        driver.quit()


main()
