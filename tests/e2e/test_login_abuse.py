"""Login abuse beyond the basic rate-limit cases of test_users_sessions.py:
concurrent guesses cannot exceed the limit, 429 answers do not count as
attempts, guesses at unknown names count per address, the per-user limit
ignores the case of the username, and a locked address does not lock the
real user out elsewhere.

The limits: 10 failed logins per (address, contract, username) and 50 per
address within a sliding 15 minutes.
"""

from concurrent.futures import ThreadPoolExecutor

from conftest import Tenant, create_user, error_code, login, unique

USER_FAILURES = 10
ADDRESS_FAILURES = 50
WINDOW_SECONDS = 15 * 60
# Several password hashing threads, so that guesses really run in parallel.
LIMITS = {"login_workers": 8, "login_queue": 256}


def attempt(server, user, password, source, username=None, cid=None):
    return login(server, cid or user.cid, username or user.username,
                 password, user.chat_code, source_address=source)


def assert_rate_limited(response):
    assert response.status_code == 429, response.text
    assert error_code(response) == "too_many_requests"
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= WINDOW_SECONDS


def test_login_concurrent_guesses_bounded(blobd):
    """Guesses sent at once get at most the limit's worth of 401s; the rest
    get 429, however many hashing threads run."""
    server = blobd(limits=LIMITS)
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid)
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(
            lambda n: attempt(server, user, f"guess {n}", "127.0.0.2"),
            range(40)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= USER_FAILURES, statuses
    assert statuses.count(429) >= 40 - USER_FAILURES
    assert_rate_limited(attempt(server, user, user.password, "127.0.0.2"))
    assert attempt(server, user, user.password,
                   "127.0.0.3").status_code == 201


def test_login_429_not_counted(blobd):
    """Attempts answered 429 do not count towards the address limit."""
    server = blobd()
    tenant = Tenant(server, users=0)
    locked, other, last = [create_user(tenant.operator, tenant.cid)
                           for _ in range(3)]
    source = "127.0.0.4"
    for _ in range(USER_FAILURES):
        assert attempt(server, locked, "wrong", source).status_code == 401
    for _ in range(ADDRESS_FAILURES):
        assert_rate_limited(attempt(server, locked, "wrong", source))
    # Counted so far: 10 of the address's 50. Were the 429s counted, the
    # address would be locked now.
    for _ in range(5):
        assert attempt(server, other, "wrong", source).status_code == 401
    assert attempt(server, last, last.password, source).status_code == 201


def test_login_unknown_names_count_per_address(blobd):
    """Guesses at usernames and contracts that do not exist count towards
    the address limit, so spraying names locks the address."""
    server = blobd(limits=LIMITS)
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid)
    source = "127.0.0.5"

    def guess(n):
        if n % 2:
            return attempt(server, user, "wrong", source,
                           username=unique("nobody"))
        return attempt(server, user, "wrong", source, cid=unique("nocid"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [r.status_code
                    for r in pool.map(guess, range(ADDRESS_FAILURES))]
    assert statuses == [401] * ADDRESS_FAILURES
    assert_rate_limited(attempt(server, user, user.password, source))
    assert_rate_limited(attempt(server, user, "wrong", source,
                                username=unique("nobody")))
    assert attempt(server, user, user.password,
                   "127.0.0.6").status_code == 201


def test_login_username_case_counts_once(blobd):
    """Varying the case of a username does not get around the per-user
    limit."""
    server = blobd()
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid,
                       username=unique("anna"))
    source = "127.0.0.7"
    variants = [user.username, user.username.upper(),
                user.username.capitalize()]
    for n in range(USER_FAILURES):
        response = attempt(server, user, "wrong", source,
                           username=variants[n % len(variants)])
        assert response.status_code == 401
    assert_rate_limited(attempt(server, user, user.password, source))
    assert_rate_limited(attempt(server, user, user.password, source,
                                username=user.username.upper()))


def test_login_locked_address_not_others(blobd):
    """While one address is locked out for a user, and keeps guessing, the
    user logs in from another address, and the lock survives the
    successful login elsewhere."""
    server = blobd()
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid)
    attacker, office = "127.0.0.8", "127.0.0.9"
    for _ in range(USER_FAILURES):
        assert attempt(server, user, "wrong", attacker).status_code == 401
    for _ in range(5):
        assert_rate_limited(attempt(server, user, "wrong", attacker))
    assert attempt(server, user, user.password, office).status_code == 201
    assert_rate_limited(attempt(server, user, user.password, attacker))
