"""The pages in a real Chromium, against the real processes (gunicorn + eventlet, celery, Redis)."""

import re
import signal

import pytest
from playwright.sync_api import expect
from clients import api_job, submit
from processes import free_port, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect.set_options(timeout=20_000)  # a busy 2-core machine: be patient, never sleep


@pytest.fixture
def site(stack, page):
    """The stack's page, failing the test on any script error or any request off this machine."""
    problems = []
    local = re.compile(r"^(https?|wss?)://127\.0\.0\.1:\d+/|^data:")
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("request", lambda request: None if local.match(request.url)
            else problems.append(f"request off this machine: {request.url}"))
    page.websockets = []
    page.on("websocket", lambda ws: page.websockets.append(ws.url))
    page.url_for = lambda path: stack.url + path
    yield page
    assert problems == []


def submit_form(page, **fields):
    """Fill the sleep form on / and start the job; returns the new job's id."""
    page.goto(page.url_for("/"))
    for name, value in fields.items():
        page.fill(f"#sleep-{name}", str(value))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def log_seqs(page):
    return [int(seq) for seq in page.locator("#log li").evaluate_all(
        "items => items.map(li => li.dataset.seq)")]


def expect_complete_log(page, job_id, stack):
    """The message log holds every seq of the job exactly once, in order."""
    final_seq = api_job(stack.url, job_id)["seq"]
    expect(page.locator("#log li")).to_have_count(final_seq + 1)
    assert log_seqs(page) == list(range(final_seq + 1))


def test_submitting_the_form_shows_the_job_live_until_its_result(site, stack):
    job_id = submit_form(site, steps=8, interval=0.15)

    expect(site.locator("#state")).to_have_text("SUCCESS")
    expect(site.locator("#percent")).to_have_text("100%")
    expect(site.locator("#bar")).to_have_attribute("aria-valuenow", "100")
    expect(site.locator("#result")).to_contain_text("steps")
    expect(site.locator("#result dd")).to_have_text("8")
    expect(site.locator("#message")).to_have_text("done")
    expect(site.locator("#cancel")).to_be_hidden()
    expect(site.locator("#elapsed")).to_contain_text("elapsed")
    expect(site).to_have_title("success · sleep")
    expect_complete_log(site, job_id, stack)
    expect(site.locator("#log li .text").last).to_have_text("done")
    assert site.websockets, "the client should upgrade to a websocket by default"


def test_bad_params_are_shown_beside_their_field(site):
    site.goto(site.url_for("/"))
    site.fill("#sleep-steps", "0")
    with site.expect_response(lambda r: r.request.method == "POST") as answer:
        site.click("button[type=submit]")
    assert answer.value.status == 400
    error = site.locator(".field.invalid .error[data-field='sleep-steps']")
    expect(error).to_contain_text("between 1 and 10000")
    expect(site.locator("#sleep-steps")).to_have_value("0")  # what was typed is kept

    site.fill("#sleep-steps", "3")
    site.fill("#sleep-fail_at", "5")
    site.click("button[type=submit]")
    expect(site.locator(".error[data-field='sleep-fail_at']")).to_contain_text("greater than steps")


def test_title_eta_and_connection_indicator_follow_a_running_job(site, stack):
    job = submit(stack.url, steps=20, interval=0.25)
    site.goto(site.url_for(f"/jobs/{job['job_id']}"))

    expect(site.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(site.locator("#connection")).to_have_text("live")
    expect(site).to_have_title(re.compile(r"^([1-9]|[1-9][0-9])% · sleep$"))
    expect(site.locator("#eta")).to_contain_text(re.compile(r"about \d+ s left"))
    expect(site.locator("#counts")).to_contain_text(" / 20")
    expect(site).to_have_title("success · sleep")
    expect(site.locator("#eta")).to_have_text("")


def test_reloading_mid_job_restores_its_state_and_whole_log(site, stack):
    job = submit(stack.url, steps=20, interval=0.2)
    site.goto(site.url_for(f"/jobs/{job['job_id']}"))
    # (The page's CSP forbids eval, so wait through Playwright's own polling, not wait_for_function.)
    expect(site.locator("#bar")).to_have_attribute("aria-valuenow", re.compile(r"^(2[5-9]|[3-9]\d)(\.\d+)?$"))

    site.reload()
    # Rendered by the server from the store, before any socket event arrives.
    expect(site.locator("#state")).to_have_text("PROGRESS")
    assert float(site.locator("#bar").get_attribute("aria-valuenow")) >= 25
    # Then the subscribe replays the history: the log starts at seq 0 again.
    expect(site.locator("#log li").first).to_have_attribute("data-seq", "0")
    expect(site.locator("#state")).to_have_text("SUCCESS")
    expect_complete_log(site, job["job_id"], stack)


def test_the_submitting_browser_cancels_and_another_browser_only_watches(site, stack, browser):
    job_id = submit_form(site, steps=100, interval=0.2)
    expect(site.locator("#state")).to_have_text("PROGRESS")

    # The same link in another browser (its own cookies and storage): live progress, no Cancel.
    other = browser.new_context().new_page()
    problems = []
    other.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    try:
        other.goto(site.url_for(f"/jobs/{job_id}"))
        expect(other.locator("#connection")).to_have_attribute("data-state", "connected")
        first = int(other.locator("#log li").last.get_attribute("data-seq"))
        expect(other.locator("#log li").last).not_to_have_attribute("data-seq", str(first))
        expect(other.locator("#state")).to_have_text("PROGRESS")
        assert other.locator("#cancel").count() == 0

        site.click("#cancel")
        expect(site.locator("#state")).to_have_text("REVOKED")
        expect(site.locator("#message")).to_have_text("cancelled")
        expect(site.locator("#cancel")).to_be_hidden()
        expect(site.locator("#outcome")).to_be_visible()
        expect(site).to_have_title("revoked · sleep")
        assert api_job(stack.url, job_id)["state"] == "REVOKED"
        assert site.locator("#bar").get_attribute("data-state") == "REVOKED"
        expect(other.locator("#state")).to_have_text("REVOKED")  # the watcher sees it end
    finally:
        other.context.close()
    assert problems == []


def test_a_job_submitted_elsewhere_is_watched_without_cancel(site, stack):
    job = submit(stack.url, steps=20, interval=0.1)
    site.goto(site.url_for(f"/jobs/{job['job_id']}"))
    expect(site.locator("#state")).to_have_text("SUCCESS")
    assert site.locator("#cancel").count() == 0


def test_a_failing_job_shows_its_error(site, stack):
    job_id = submit_form(site, steps=6, interval=0.1, fail_at=3)

    expect(site.locator("#state")).to_have_text("FAILURE")
    expect(site.locator("#error")).to_have_text("StepFailed: failed at step 3, as asked")
    expect(site.locator("#outcome-title")).to_have_text("Outcome")
    expect(site.locator("#cancel")).to_be_hidden()
    expect_complete_log(site, job_id, stack)


def test_a_job_started_in_another_tab_appears_in_the_list(site, stack, context):
    site.goto(site.url_for("/"))
    expect(site.locator("#connection")).to_have_attribute("data-state", "connected")

    other = context.new_page()
    other.url_for = site.url_for
    job_id = submit_form(other, steps=10, interval=0.2)

    row = site.locator(f"li.job-row[data-job-id='{job_id}']")
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text(re.compile("PENDING|STARTED|PROGRESS"))
    expect(row.locator(".badge")).to_have_text("SUCCESS")  # its state keeps changing live
    expect(row.locator(".percent")).to_have_text("100%")
    expect(row.locator("a")).to_have_attribute("href", f"/jobs/{job_id}")
    expect(row.locator(".age")).to_contain_text("ago")
    expect(site.locator("#recent-empty")).to_be_hidden()
    other.close()


def test_markup_in_messages_and_errors_is_shown_as_text(site, stack):
    """A job's own words are text, never HTML: server-rendered, replayed or live."""
    from flask_socketio import SocketIO

    from notifier.settings import Settings
    from notifier.store import FAILURE, JobStore
    from notifier.reporter import ProgressReporter

    evil = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
    # A job published exactly as a worker publishes it (store, then the message queue), with a
    # message no built-in kind would produce.
    settings = Settings.from_env(stack.env)
    store = JobStore.from_settings(settings)
    emitter = SocketIO(message_queue=settings.message_queue, async_mode="threading")
    job = store.create("sleep", {"steps": 3, "interval": 0})
    reporter = ProgressReporter(job["job_id"], store, emitter, min_interval=0)
    assert reporter.start()
    try:
        reporter.progress(1, 3, "before " + evil)
        site.goto(site.url_for(f"/jobs/{job['job_id']}"))
        expect(site.locator("#message")).to_have_text("before " + evil)
        expect(site).to_have_title(re.compile(r"^33% · sleep$"))
        expect(site.locator("#connection")).to_have_attribute("data-state", "connected")
        expect(site.locator("#log li")).to_have_count(3)  # seq 0..2, replayed

        reporter.log("live " + evil)
        expect(site.locator("#log li .text").last).to_have_text("live " + evil)
    finally:
        reporter.finish(FAILURE, error="Boom: " + evil, message="failed")
    expect(site.locator("#error")).to_have_text("Boom: " + evil)
    assert site.evaluate("window.__pwned") is None
    assert site.locator("main script:not(#job-data), main img").count() == 0


def test_long_polling_only(site, stack):
    site.goto(site.url_for("/?transport=polling"))
    expect(site.locator("#connection")).to_have_attribute("data-state", "connected")
    site.fill("#sleep-steps", "6")
    site.fill("#sleep-interval", "0.15")
    site.click("button[type=submit]")

    # The job page keeps the forced transport after the form's redirect.
    expect(site).to_have_url(re.compile(r"/jobs/[0-9a-f-]{36}\?transport=polling$"))
    job_id = site.locator("#job").get_attribute("data-job-id")
    expect(site.locator("#connection")).to_have_text("live")
    expect(site.locator("#state")).to_have_text("SUCCESS")
    expect_complete_log(site, job_id, stack)
    assert site.websockets == []


@pytest.mark.parametrize("hidden", [True, False], ids=["tab-hidden", "tab-visible"])
def test_desktop_notification_only_when_the_tab_is_hidden(site, stack, hidden):
    # Headless Chromium never hides a tab: stand in for the Notification API and visibility.
    site.add_init_script("""
        window.__notifications = [];
        window.Notification = class {
          constructor(title, options) { window.__notifications.push({ title, body: options.body }); }
          static get permission() { return "granted"; }
          static requestPermission() { return Promise.resolve("granted"); }
        };
        Object.defineProperty(document, "hidden", { get: () => %s });
    """ % ("true" if hidden else "false"))
    job = submit(stack.url, steps=4, interval=0.2)
    site.goto(site.url_for(f"/jobs/{job['job_id']}"))

    expect(site.locator("#state")).to_have_text("SUCCESS")
    notes = site.evaluate("window.__notifications")
    assert notes == ([{"title": "sleep: success", "body": "done"}] if hidden else [])


def test_pages_fit_a_phone_screen(site, stack):
    site.set_viewport_size({"width": 390, "height": 844})
    job = submit(stack.url, steps=3, interval=0.05)
    site.goto(site.url_for(f"/jobs/{job['job_id']}"))
    expect(site.locator("#state")).to_have_text("SUCCESS")
    assert site.evaluate("document.documentElement.scrollWidth") <= 390

    site.goto(site.url_for("/"))
    expect(site.locator(f"li.job-row[data-job-id='{job['job_id']}'] .badge")).to_have_text("SUCCESS")
    assert site.evaluate("document.documentElement.scrollWidth") <= 390


def test_indicator_and_log_survive_a_stalled_and_a_restarted_server(site, stack, processes):
    """SIGSTOP: the link looks open but no heartbeat comes (stale). SIGKILL and restart: the page
    reconnects, re-subscribes with its last seq, and its log has no gap and no duplicate."""
    port = free_port()
    web = processes.web(stack.env, port=port)  # same Redis and worker as the stack
    job = submit(web.url, steps=40, interval=0.2)
    site.goto(f"{web.url}/jobs/{job['job_id']}")
    expect(site.locator("#connection")).to_have_attribute("data-state", "connected")

    web.signal_group(signal.SIGSTOP)
    try:
        expect(site.locator("#connection")).to_have_attribute("data-state", "stale")
    finally:
        web.signal_group(signal.SIGCONT)
    expect(site.locator("#connection")).to_have_attribute("data-state", "connected")

    seen = max(log_seqs(site))
    web.kill()
    expect(site.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    # The job goes on meanwhile; the page misses those events.
    wait_for(lambda: api_job(stack.url, job["job_id"])["seq"] >= seen + 5, 20,
             message="the job to move on while the page is cut off")
    processes.web(stack.env, port=port)

    expect(site.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(site.locator("#state")).to_have_text("SUCCESS")
    expect_complete_log(site, job["job_id"], stack)


def test_after_a_gap_older_than_the_history_the_page_stops_asking_for_it(site, stack, processes):
    """Cut off while its job moves on far past the server's kept history, the page gets what is
    left on reconnecting; on the next reconnect it asks only for what came after that."""
    from dataclasses import replace

    from notifier.settings import Settings
    from notifier.store import JobStore

    store = JobStore.from_settings(replace(Settings.from_env(stack.env), history_length=20))

    def progress(upto):
        seq = store.get(job_id)["seq"]
        for step in range(seq + 1, upto + 1):
            store.update(job_id, state="PROGRESS", current=step, total=1000, message=f"step {step}")

    port = free_port()
    web = processes.web(stack.env, port=port)
    job_id = store.create("sleep", {"steps": 1000, "interval": 0})["job_id"]
    progress(10)
    asked = []  # the last_seq of each subscribe the page sends, over long-polling or websocket

    def sent(text):
        asked.extend(int(seq) for seq in re.findall(r'"subscribe",\{[^}]*"last_seq":(-?\d+)', text or ""))
    site.on("request", lambda request: sent(request.post_data) if request.method == "POST" else None)
    site.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent(frame if isinstance(frame, str)
                                                                         else "")))
    site.goto(f"{web.url}/jobs/{job_id}")
    expect(site.locator("#log li")).to_have_count(11)
    assert asked == [-1]

    web.kill()
    expect(site.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    progress(400)  # the history keeps only about the newest hundred of these
    history_from = store.history(job_id)[0]["seq"]
    assert history_from > 11
    web = processes.web(stack.env, port=port)
    expect(site.locator("#log li").last).to_have_attribute("data-seq", "400")
    assert asked == [-1, 10]
    assert log_seqs(site) == [*range(11), *range(history_from, 401)]

    web.kill()
    expect(site.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    processes.web(stack.env, port=port)
    expect(site.locator("#connection")).to_have_attribute("data-state", "connected")
    wait_for(lambda: len(asked) == 3, 20, message="the page to subscribe again")
    assert asked[2] == 400, "the page asked again for seqs the server no longer has"
