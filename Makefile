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

# WEB web processes (ports 5000, 5001, ...) behind nginx on 127.0.0.1:8000 (ws.loadbalance.nginx),
# plus the worker and Redis: deploy/Procfile.cluster, web first so honcho numbers its ports from 5000.
# SERVER=gevent serves them with gevent (the recommended production server) instead of eventlet.
cluster: install
	@test -f $(ENV_FILE) || cp .env.example $(ENV_FILE)
	@PATH="$$PATH:/usr/sbin" command -v nginx >/dev/null || { echo "nginx is needed (apt-get install nginx-light)"; exit 1; }
	@case "$(SERVER)" in eventlet|gevent) ;; *) echo "SERVER must be eventlet or gevent"; exit 1;; esac
	$(BIN)/python deploy/nginx_config.py --web $(WEB) --first-port 5000 --listen $(LISTEN) $(CLUSTER_DIR)
	CLUSTER_DIR="$(abspath $(CLUSTER_DIR))" CLUSTER_SERVER=$(SERVER) PATH="$(CURDIR)/$(BIN):$$PATH:/usr/sbin" \
	  $(BIN)/honcho -f deploy/Procfile.cluster -e $(ENV_FILE) -d . start -p 5000 -c web=$(WEB)

test: install-dev chromium
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(BIN)/python

install: $(VENV)/.installed $(SOCKETIO_JS)

install-dev: $(VENV)/.installed-dev $(SOCKETIO_JS)

install-bench: $(VENV)/.installed-bench $(SOCKETIO_JS)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
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
