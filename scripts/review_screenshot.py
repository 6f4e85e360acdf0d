"""Screenshot of Label Studio's review page for one task (headless Chromium via playwright).

Not part of the tests. Needs a running server (`cda review serve`), a pushed project, Debian's
chromium (`apt-get install chromium`) and playwright in a throwaway virtualenv (no
`playwright install`: it uses /usr/bin/chromium):

    python3.11 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    /tmp/pw/bin/python scripts/review_screenshot.py --project 1 \
        --credentials $CDA_CACHE_DIR/label-studio/data/cda-credentials.json --out docs/review.png

It logs in with the credentials file, opens the task with the shortest original among those
the filter dropped (or --task), ticks "reject" so the reasons show, and saves the page.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright


def _tasks(url: str, token: str, project: int) -> list[dict]:
    request = urllib.request.Request(f"{url}/api/tasks?project={project}&page_size=1000",
                                     headers={"Authorization": f"Token {token}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["tasks"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--project", type=int, required=True)
    parser.add_argument("--task", type=int, default=None)
    parser.add_argument("--credentials", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/review.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--no-reject", action="store_true", help="Do not tick reject.")
    args = parser.parse_args()
    creds = json.loads(args.credentials.read_text(encoding="utf-8"))
    task = args.task
    if task is None:
        tasks = _tasks(args.url, creds["token"], args.project)
        dropped = [t for t in tasks if t["data"]["filter"].startswith("dropped")] or tasks
        task = min(dropped, key=lambda t: len(t["data"]["original"]))["id"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                          "--disable-background-networking", "--disable-component-update",
                                          "--disable-sync"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{args.url}/user/login/")
        page.fill("input[name=email]", creds["username"])
        page.fill("input[name=password]", creds["password"])
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(f"{args.url}/projects/{args.project}/data?task={task}")
        page.wait_for_selector("text=Word diff", timeout=60_000)
        page.wait_for_timeout(1500)
        if not args.no_reject:
            page.locator("label", has_text="reject").first.click()
            page.wait_for_selector("text=label not flipped", timeout=10_000)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"task {task}: {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
