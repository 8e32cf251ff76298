"""Many workers on one study: PostgreSQL (heartbeats, a SIGKILLed worker's trial retried) and
Redis. Each needs a local server (127.0.0.1) and is skipped with the reason where none runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nasdepth.study import make_storage, open_study, run_study
from nasdepth.study.measure import worker_info
from nasdepth.study.record import TrialRecord, read_record, write_record
from nasdepth.study.study_file import load_study
from tests.conftest import write_study

ATTRS = ("arch", "summary", "cv_folds", "flops", "wall_time", "device", "seed", "versions",
         "worker")


def _postgres_user() -> str | None:
    try:
        import psycopg2
    except ImportError:
        return None
    for user in ("postgres", "root"):
        try:
            psycopg2.connect(host="127.0.0.1", port=5432, dbname="test", user=user,
                             connect_timeout=3).close()
            return user
        except Exception:
            continue
    return None


def _postgres_url() -> str | None:
    user = _postgres_user()
    return None if user is None else f"postgresql://{user}@127.0.0.1:5432/test"


def _redis_url() -> str | None:
    try:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
        return "redis://127.0.0.1:6379/0"
    except Exception:
        return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432 (database 'test', trust auth)")
    yield url


@pytest.fixture
def fresh_pg_db() -> Iterator[str]:
    """A new, empty PostgreSQL database (no Optuna tables yet), dropped afterwards."""
    user = _postgres_user()
    if user is None:
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432 (database 'test', trust auth)")
    import psycopg2

    name = f"nasdepth_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, dbname="test", user=user)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql://{user}@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _study(tmp_path: Path, url: str, *, epochs: int = 1, trials: int = 2, **storage: int
           ) -> tuple[Path, str]:
    name = f"nasdepth-test-{uuid.uuid4().hex[:10]}"  # unique per run: servers are shared
    path = write_study(tmp_path, name=name, storage={"url": url, **storage},
                       data={"source": "sklearn:digits", "limit": 400},
                       budget={"trials": trials},
                       training={"epochs": epochs, "batch_size": 64, "lr": 0.01})
    return path, name


def _worker(path: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "nasdepth", "run", str(path), "--no-report",
                             "--no-progress", "--no-probes"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_finished(study: optuna.Study, budget: int) -> list[optuna.trial.FrozenTrial]:
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == budget, [(t.number, t.state, read_record(t).reason) for t in trials]
    for t in done:
        rec = read_record(t)
        found = {**rec.to_dict(), "flops": rec.costs.get("flops"), "wall_time": rec.wall_time}
        for key in ATTRS:
            assert found[key] not in (None, {}, [], ""), (t.number, key)
    return done


@pytest.mark.slow
def test_three_postgres_workers_share_one_study(tmp_path: Path, pg_url: str) -> None:
    path, name = _study(tmp_path, pg_url, trials=5)
    storage = make_storage(pg_url)
    try:
        procs = [_worker(path) for _ in range(3)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        study = optuna.load_study(study_name=name, storage=storage)
        done = _check_finished(study, budget=5)
        assert all(read_record(t).cv_folds for t in done)
    finally:
        optuna.delete_study(study_name=name, storage=storage)


@pytest.mark.slow
def test_sigkilled_worker_trial_is_retried_and_nothing_is_lost(tmp_path: Path,
                                                               pg_url: str) -> None:
    path, name = _study(tmp_path, pg_url, epochs=4, heartbeat_interval=1, grace_period=2)
    storage = make_storage(pg_url)
    victim, survivor = _worker(path), None
    try:
        study = None
        deadline = time.monotonic() + 240
        killed_number = None
        while time.monotonic() < deadline and killed_number is None:
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                continue
            running = [t for t in study.get_trials(states=(TrialState.RUNNING,))
                       if read_record(t).worker.get("pid") == victim.pid
                       and read_record(t).arch]
            if running:
                killed_number = running[0].number
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                completed_before = {t.number: t.value for t in study.get_trials(
                    states=(TrialState.COMPLETE,))}
        assert killed_number is not None and study is not None, "the worker never started"
        survivor = _worker(path)
        _, err = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, err
        study = optuna.load_study(study_name=name, storage=storage)
        done = _check_finished(study, budget=2)
        killed = study.trials[killed_number]
        assert killed.state == TrialState.FAIL  # failed by the heartbeat, not left RUNNING
        retries = [t for t in done if t.system_attrs.get("failed_trial") == killed_number]
        assert len(retries) == 1 and retries[0].params == killed.params
        after = {t.number: t.value for t in done}
        assert all(after.get(n) == v for n, v in completed_before.items())  # nothing lost
    finally:
        for p in (victim, survivor):
            if p is not None and p.poll() is None:
                p.kill()
        optuna.delete_study(study_name=name, storage=storage)


@pytest.mark.slow
def test_two_local_workers_on_redis_stop_at_the_budget(tmp_path: Path) -> None:
    url = _redis_url()
    if url is None:
        pytest.skip("no Redis server at 127.0.0.1:6379")
    path, name = _study(tmp_path, url)
    study = run_study(path, trials=3, workers=2, progress=False, probes=False)
    try:
        _check_finished(study, budget=3)
    finally:
        optuna.delete_study(study_name=name, storage=make_storage(url))


def test_dead_local_worker_trial_on_a_journal_file_is_retried(tmp_path: Path) -> None:
    path = write_study(tmp_path, data={"source": "sklearn:digits", "limit": 200},
                       training={"epochs": 1, "batch_size": 64, "lr": 0.01},
                       budget={"trials": 1})
    cfg = load_study(path)
    study = open_study(cfg)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: a worker killed mid-trial
    orphan = study.ask()
    cfg.space.suggest(orphan)
    write_record(orphan, TrialRecord(number=orphan.number,
                                     worker={**worker_info(), "pid": dead.pid}))
    study = run_study(path, progress=False, probes=False)
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert read_record(trials[0]).reason == f"worker process {dead.pid} died"
    assert read_record(trials[0]).state == "failed"
    retry = [t for t in trials if read_record(t).retry_of == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == trials[0].params


#: a worker that imports everything, says it is ready, and starts the CLI the moment the test
#: creates the "go" file: the workers then reach the fresh database within a millisecond or so
LAUNCHER = """
import sys, time
from pathlib import Path
from nasdepth.cli import main
import nasdepth.study.storage, optuna, sqlalchemy, psycopg2
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.0005)
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.slow
def test_workers_started_at_the_same_instant_on_a_fresh_postgres_database(
        tmp_path: Path, fresh_pg_db: str) -> None:
    """An array job starts every worker at once on an empty database: all of them must get
    the storage (one creates the schema, the others wait for it), and a worker SIGKILLed
    mid-trial loses nothing: its trial is failed by the heartbeat and run again."""
    path, name = _study(tmp_path, fresh_pg_db, epochs=4, trials=4, heartbeat_interval=1,
                        grace_period=5)  # a loaded CPU may delay a live worker's heartbeat
    go = tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path / f"ready{i}"),
                               str(go), "run", str(path), "--no-report", "--no-progress",
                               "--no-probes"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{i}").exists() for i in range(3)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
                p.communicate()[1] for p in procs if p.poll() is not None]
            time.sleep(0.05)
        go.touch()
        storage, victim, killed_number = None, procs[0], None
        while time.monotonic() < deadline + 120 and killed_number is None:
            time.sleep(0.1)
            try:
                storage = storage or make_storage(fresh_pg_db)
                study = optuna.load_study(study_name=name, storage=storage)
            except (KeyError, Exception):
                continue
            running = [t for t in study.get_trials(states=(TrialState.RUNNING,))
                       if (read_record(t).worker or {}).get("pid") == victim.pid
                       and read_record(t).arch]
            if running:
                killed_number = running[0].number
                os.kill(victim.pid, signal.SIGKILL)
        assert killed_number is not None, "the first worker never ran a trial"
        victim.wait()
        for p in procs[1:]:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            assert "UniqueViolation" not in err and "Traceback" not in err, err
        assert storage is not None
        study = optuna.load_study(study_name=name, storage=storage)
        done = _check_finished(study, budget=4)
        killed = study.trials[killed_number]
        assert killed.state == TrialState.FAIL
        retries = [t for t in done if t.system_attrs.get("failed_trial") == killed_number]
        assert len(retries) == 1 and retries[0].params == killed.params
        assert len({read_record(t).worker.get("pid") for t in study.trials}) >= 2
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_password_with_at_and_colon_reaches_postgres_whole(fresh_pg_db: str) -> None:
    """Written unencoded, the password's '@' would make the driver connect to the host
    'Secret99@127.0.0.1'; nasdepth splits at the last '@' and encodes it (the server here
    trusts local users, so any password is accepted once the host is right)."""
    user, rest = fresh_pg_db.split("://", 1)[1].split("@", 1)
    storage = make_storage(f"postgresql://{user}:Top@Se:cret99@{rest}")
    study = optuna.create_study(study_name="pw", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(optuna.load_study(study_name="pw", storage=storage).trials) == 1


# -- distinct candidates per worker (issue 30) ------------------------------------------------

#: 3 x 61 x 2 x 2 = 732 candidates: 9 independent draws repeat one with probability ~5%
WIDE_SPACE = {"name": "wide", "stages": 1, "depth": {"type": "int", "low": 1, "high": 3},
              "width": {"type": "int", "low": 4, "high": 64},
              "block": {"type": "categorical", "choices": ["plain", "residual"]},
              "skip": {"type": "categorical", "choices": [True, False]}}


def _wide_study(tmp_path: Path, url: str, trials: int = 9) -> tuple[Path, str]:
    name = f"nasdepth-test-{uuid.uuid4().hex[:10]}"
    path = write_study(tmp_path, name=name, space=WIDE_SPACE, storage={"url": url},
                       data={"source": "sklearn:digits", "limit": 200}, budget={"trials": trials},
                       training={"epochs": 1, "batch_size": 64, "lr": 0.01}, sampler="random")
    return path, name


def _check_distinct(study: optuna.Study, budget: int) -> None:
    """At least budget - 1 distinct candidates among the finished trials, every trial finished
    or failed with a reason, each drawn by a numbered worker."""
    trials = study.get_trials()
    table = [(t.number, t.state.name, read_record(t).reason, t.params) for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], table
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == budget, table
    distinct = {tuple(sorted(t.params.items())) for t in done}
    assert len(distinct) >= budget - 1, table
    assert all(read_record(t).reason for t in trials if t.state == TrialState.FAIL), table
    indexes = {(read_record(t).worker or {}).get("index") for t in done}
    assert indexes <= {0, 1, 2} and len(indexes) >= 2, (indexes, table)


def _start_at_once(tmp_path: Path, path: Path, n: int = 3) -> list[subprocess.Popen]:
    """``n`` separately started ``nasdepth run`` processes released at the same instant."""
    go = tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("NASDEPTH_WORKER_INDEX", None)
    procs = [subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path / f"ready{i}"),
                               str(go), "run", str(path), "--no-report", "--no-progress",
                               "--no-probes"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    deadline = time.monotonic() + 180
    while not all((tmp_path / f"ready{i}").exists() for i in range(n)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
            p.communicate()[1] for p in procs if p.poll() is not None]
        time.sleep(0.05)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=400)
        assert p.returncode == 0, err
    return procs


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "redis"])
def test_three_workers_started_at_once_train_distinct_candidates(tmp_path: Path,
                                                                 backend: str) -> None:
    url = _postgres_url() if backend == "postgresql" else _redis_url()
    if url is None:
        pytest.skip(f"no {backend} server at 127.0.0.1 (PostgreSQL: 5432, database 'test', "
                    "trust auth; Redis: 6379)")
    path, name = _wide_study(tmp_path, url)
    storage = make_storage(url)
    try:
        _start_at_once(tmp_path, path)
        _check_distinct(optuna.load_study(study_name=name, storage=storage), budget=9)
    finally:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass


@pytest.mark.slow
def test_three_local_workers_on_a_journal_train_distinct_candidates(tmp_path: Path) -> None:
    path, _ = _wide_study(tmp_path, str(tmp_path / "wide.journal"))
    study = run_study(path, workers=3, progress=False, probes=False)
    _check_distinct(study, budget=9)


def test_worker_seeds_are_stable_and_distinct() -> None:
    from nasdepth.study.distinct import worker_seed

    assert worker_seed(7, 0) == 7  # one worker alone draws what it always drew
    seeds = [worker_seed(7, i) for i in range(100)]
    assert len(set(seeds)) == 100 and seeds == [worker_seed(7, i) for i in range(100)]
    assert worker_seed(7, 1) == 1212852174  # the same on every machine (docs/workers.md)
    assert worker_seed(8, 1) != worker_seed(7, 1)


def test_a_worker_index_gives_a_reproducible_stream_of_its_own(tmp_path: Path) -> None:
    runs = {}
    for folder, index in (("a", 1), ("b", 1), ("c", 0)):
        (tmp_path / folder).mkdir()
        path = write_study(tmp_path / folder, space=WIDE_SPACE, sampler="random",
                           data={"source": "sklearn:digits", "limit": 100},
                           training={"epochs": 1, "batch_size": 64, "lr": 0.01})
        study = run_study(path, trials=2, progress=False, probes=False, worker_index=index)
        runs[folder] = [t.params for t in study.trials]
        assert {read_record(t).worker["index"] for t in study.trials} == {index}
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]


def test_slots_are_claimed_in_order_and_a_resume_draws_a_new_stream(tmp_path: Path) -> None:
    from nasdepth.study.distinct import claim_worker_indexes

    path = write_study(tmp_path, space=WIDE_SPACE, sampler="random",
                       data={"source": "sklearn:digits", "limit": 100},
                       training={"epochs": 1, "batch_size": 64, "lr": 0.01})
    first = run_study(path, trials=2, progress=False, probes=False)
    second = run_study(path, trials=4, progress=False, probes=False)
    idx = [read_record(t).worker["index"] for t in second.trials]
    assert idx == [0, 0, 1, 1]
    # the resume did not redraw the first run's candidates (the same seed would have)
    assert [t.params for t in second.trials[2:]] != [t.params for t in first.trials]
    assert claim_worker_indexes(second, 3) == [2, 3, 4]


def test_a_candidate_held_by_a_running_trial_is_drawn_again(tmp_path: Path) -> None:
    from nasdepth.study.distinct import TAKEN
    from nasdepth.study.identity import settings_id
    from nasdepth.study.runner import prepare

    path = write_study(tmp_path, data={"source": "sklearn:digits", "limit": 100},
                       training={"epochs": 1, "batch_size": 64, "lr": 0.01})
    cfg = load_study(path)
    study = open_study(cfg, data=prepare(cfg))
    held = {"depth": 1, "block": "plain", "skip": True}
    study.enqueue_trial(held)
    holder = study.ask()  # running in another worker
    cfg.space.suggest(holder)
    # the other worker: alive until this one gives the candidate up (then it dies, and its
    # trial is retried here)
    watch = ("import sys, time\nend = time.time() + 120\nwhile time.time() < end and "
             f"{TAKEN!r} not in open(sys.argv[1]).read():\n    time.sleep(0.1)")
    # started through a shell that exits at once: not our child, so no zombie outlives it
    pid = int(subprocess.run(["sh", "-c", '"$0" -c "$1" "$2" >/dev/null 2>&1 & echo $!',
                              sys.executable, watch, cfg.storage_url],
                             capture_output=True, text=True, check=True).stdout)
    write_record(holder, TrialRecord(number=holder.number,
                                     settings_id=settings_id(study.user_attrs["identity"]),
                                     worker={**worker_info(), "pid": pid}))
    study.enqueue_trial(held)  # this worker draws the same candidate meanwhile
    try:
        study = run_study(path, trials=3, progress=False, probes=False)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    by_number = {t.number: t for t in study.get_trials()}
    assert TAKEN in str(read_record(by_number[1]).reason)  # given up, not trained twice
    assert not read_record(by_number[1]).cv_folds
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3  # the study went on: other draws, and the holder's retry
    assert any(read_record(t).retry_of == 0 and t.params == held for t in done)


def test_libpq_keyword_form_opens_postgres_and_names_no_file(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """``host=... password=...`` used to be taken for a journal path named after the password.
    The server here trusts local users, so any password is accepted."""
    user = _postgres_user()
    if user is None:
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432 (database 'test', trust auth)")
    monkeypatch.chdir(tmp_path)
    name = f"nasdepth-test-{uuid.uuid4().hex[:10]}"
    storage = make_storage(f"host=127.0.0.1 port=5432 dbname=test user={user} "
                           "password='Secret 99'")
    try:
        study = optuna.create_study(study_name=name, storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        url = _postgres_url()
        assert url is not None
        assert len(optuna.load_study(study_name=name, storage=make_storage(url)).trials) == 1
        assert list(tmp_path.iterdir()) == []  # no journal file, no lock file
    finally:
        optuna.delete_study(study_name=name, storage=storage)
