"""Logs into horizon in headless Chromium, as a user does (tests/kolla_ansible.rs runs this with
the venv of scripts/setup-browser.sh, inside the deployment's network namespace), and prints
what happened as one JSON object: the login page's title and form fields, the page reached after
logging in (URL, title, headings, text), the browser's console errors. Saves a screenshot of the login
page and one of the page reached.

usage: horizon_login.py URL USERNAME PASSWORD SCREENSHOT_PREFIX
(SCREENSHOT_PREFIX-login.png, SCREENSHOT_PREFIX-overview.png)
"""

import json
import sys

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

# Every wait is bounded: horizon's first pages can take a few seconds on a busy machine.
PAGE_LIMIT_S = 60


def main():
    url, username, password, screenshots = sys.argv[1:5]
    options = webdriver.ChromeOptions()
    # Debian's browser and driver: Selenium must not fetch its own.
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
                "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(PAGE_LIMIT_S)
    result = {}
    try:
        driver.get(url)
        wait = WebDriverWait(driver, PAGE_LIMIT_S)
        wait.until(expected_conditions.presence_of_element_located((By.ID, "id_username")))
        result["login"] = {
            "url": driver.current_url,
            "title": driver.title,
            "fields": [e.get_attribute("name") for e in driver.find_elements(By.CSS_SELECTOR, "form input")],
        }
        driver.save_screenshot(screenshots + "-login.png")
        driver.find_element(By.ID, "id_username").send_keys(username)
        driver.find_element(By.ID, "id_password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        try:
            wait.until(lambda d: "/auth/login" not in d.current_url)
        except TimeoutException:
            pass
        headings = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "h1, .page-header")]
        result["after_login"] = {
            "url": driver.current_url,
            "title": driver.title,
            "headings": headings,
            "alerts": [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".alert")],
            # The limit summary's charts, as a user reads them ("Instances\nUsed 1 of 10").
            "text": driver.find_element(By.TAG_NAME, "body").text[:4000],
        }
        driver.save_screenshot(screenshots + "-overview.png")
        result["console_errors"] = [
            e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
        ]
    finally:
        driver.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
