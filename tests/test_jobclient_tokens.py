"""The terminal client's store of cancel tokens: private to the user, bounded, never half-written."""

import json
import os
import threading

from jobclient import tokens


def test_tokens_are_kept_private_and_only_the_newest_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(tokens, "KEEP", 5)
    for n in range(8):
        tokens.save(f"job-{n}", f"token-{n}")
    assert tokens.path() == str(tmp_path / "jobclient" / "cancel-tokens.json")
    assert os.stat(tokens.path()).st_mode & 0o777 == 0o600
    assert [tokens.load(f"job-{n}") for n in range(8)] == [None] * 3 + [f"token-{n}" for n in range(3, 8)]
    assert len(json.load(open(tokens.path()))) == 5


def test_without_xdg_state_home_they_go_under_local_state(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    tokens.save("job", "token")
    assert os.path.exists(tmp_path / ".local" / "state" / "jobclient" / "cancel-tokens.json")


def test_clients_saving_at_once_lose_no_token(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    threads = [threading.Thread(target=tokens.save, args=(f"job-{n}", f"token-{n}")) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(tokens.load(f"job-{n}") == f"token-{n}" for n in range(20))


def test_an_unreadable_file_holds_no_token_and_is_replaced_on_the_next_save(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    os.makedirs(os.path.dirname(tokens.path()))
    with open(tokens.path(), "w") as f:
        f.write("{not json")
    assert tokens.load("job") is None
    tokens.save("job", "token")
    assert tokens.load("job") == "token"
