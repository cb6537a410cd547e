# The two commands of the README: `make run` installs and starts everything; `make test` installs
# and runs the tests. Both set up .venv (Python 3.11+) and the socket.io browser client from npm.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SOCKETIO_JS := node_modules/socket.io-client/dist/socket.io.min.js

WEB ?= 2
CLUSTER_DIR ?= run/cluster
SERVER ?= eventlet
LISTEN ?= 127.0.0.1:8000
ENV_FILE ?= .env

.PHONY: run cluster test venv install install-dev install-bench chromium bench clean

run: install
	@test -f $(ENV_FILE) || cp .env.example $(ENV_FILE)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -e $(ENV_FILE) start

# WEB web processes behind nginx on LISTEN (ws.loadbalance.nginx), plus the worker and Redis:
# deploy/Procfile.cluster, web first, so honcho numbers their ports from PORT (5000 unless the
# environment or ENV_FILE sets it), and nginx is configured from the same PORT. The web processes
# share one SECRET_KEY (from the environment or ENV_FILE, else one kept in CLUSTER_DIR), so a form
# one of them served still submits to another after a failover.
# SERVER=gevent serves them with gevent (the recommended production server) instead of eventlet.
cluster: install
	@test -f $(ENV_FILE) || cp .env.example $(ENV_FILE)
	@PATH="$$PATH:/usr/sbin" command -v nginx >/dev/null || { echo "nginx is needed (apt-get install nginx-light)"; exit 1; }
	@case "$(SERVER)" in eventlet|gevent) ;; *) echo "SERVER must be eventlet or gevent"; exit 1;; esac
	@mkdir -p $(CLUSTER_DIR) && test -s $(CLUSTER_DIR)/secret_key || \
	  (umask 077 && $(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > $(CLUSTER_DIR)/secret_key)
	$(BIN)/honcho -e $(ENV_FILE) run $(BIN)/python deploy/nginx_config.py --web $(WEB) --listen $(LISTEN) $(CLUSTER_DIR)
	CLUSTER_DIR="$(abspath $(CLUSTER_DIR))" CLUSTER_SERVER=$(SERVER) PATH="$(CURDIR)/$(BIN):$$PATH:/usr/sbin" \
	  $(BIN)/honcho -f deploy/Procfile.cluster -e $(ENV_FILE) -d . start -c web=$(WEB)

test: install-dev chromium
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(VENV)/.ready

install: $(VENV)/.installed $(SOCKETIO_JS)

install-dev: $(VENV)/.installed-dev $(SOCKETIO_JS)

install-bench: $(VENV)/.installed-bench $(SOCKETIO_JS)

# Stamped once pip works: a venv whose making was interrupted (Ctrl-C during a first `make run`
# leaves one without pip) is made again, not taken for done.
$(VENV)/.ready:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	@if ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
	  echo "making $(VENV)"; rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) && \
	  $(BIN)/python -m pip install --quiet --upgrade pip; \
	fi
	touch $@

$(VENV)/.installed: pyproject.toml | $(VENV)/.ready
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/.ready
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/.ready
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@ $(VENV)/.installed

# The official socket.io client, at the version package-lock.json pins (never committed).
$(SOCKETIO_JS): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed to fetch the socket.io client (apt-get install npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Browser tests drive Debian's chromium; as root this installs it, otherwise they are skipped.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "note: browser tests need Debian's chromium (sudo apt-get install chromium)"; fi; \
	fi

# Every scenario for every contender (about 10 minutes; BENCH_ARGS=--quick: under 3).
bench: install-bench
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench --json bench/results.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules test-artifacts run
