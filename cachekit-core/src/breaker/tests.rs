use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn breaker(config: BreakerConfig) -> CircuitBreaker {
    config.validate().unwrap();
    CircuitBreaker::new(config, Clock::system())
}

fn fail(b: &CircuitBreaker, at: Instant) {
    b.try_acquire_at(at).unwrap().failure_at(at);
}

#[test]
fn failure_threshold_failures_within_the_window_open_it() {
    let b = breaker(
        BreakerConfig::default()
            .failure_threshold(3)
            .window(ms(1000)),
    );
    let t0 = Instant::now();
    fail(&b, t0);
    fail(&b, t0 + ms(10));
    assert_eq!(b.state_at(t0 + ms(20)), BreakerState::Closed);
    fail(&b, t0 + ms(20));
    assert_eq!(b.state_at(t0 + ms(21)), BreakerState::Open);
    let err = b.try_acquire_at(t0 + ms(30)).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert_eq!(b.times_opened(), 1);
}

#[test]
fn failures_older_than_the_window_do_not_count() {
    let b = breaker(
        BreakerConfig::default()
            .failure_threshold(3)
            .window(ms(100)),
    );
    let t0 = Instant::now();
    for i in 0..10 {
        // Two failures per window, never three.
        fail(&b, t0 + ms(60 * i));
    }
    assert_eq!(b.state_at(t0 + ms(600)), BreakerState::Closed);
    assert_eq!(b.times_opened(), 0);
}

#[test]
fn successes_in_closed_state_do_not_hide_failures_in_the_window() {
    let b = breaker(
        BreakerConfig::default()
            .failure_threshold(2)
            .window(ms(100)),
    );
    let t0 = Instant::now();
    fail(&b, t0);
    b.try_acquire_at(t0 + ms(1)).unwrap().success();
    fail(&b, t0 + ms(2));
    assert_eq!(b.state_at(t0 + ms(3)), BreakerState::Open);
}

#[test]
fn recovery_timeout_gates_the_first_probe() {
    let b = breaker(
        BreakerConfig::default()
            .failure_threshold(1)
            .recovery_timeout(ms(500)),
    );
    let t0 = Instant::now();
    fail(&b, t0);
    assert!(b.try_acquire_at(t0 + ms(499)).is_err());
    let probe = b.try_acquire_at(t0 + ms(500)).unwrap();
    assert!(probe.probe);
}

#[test]
fn half_open_lets_only_max_probes_through_at_once() {
    let b = breaker(
        BreakerConfig::default()
            .failure_threshold(1)
            .recovery_timeout(ms(10))
            .half_open_max_probes(2)
            .success_threshold(5),
    );
    let t0 = Instant::now();
    fail(&b, t0);
    let t1 = t0 + ms(10);
    let p1 = b.try_acquire_at(t1).unwrap();
    let p2 = b.try_acquire_at(t1).unwrap();
    assert!(
        b.try_acquire_at(t1).is_err(),
        "a third probe must be refused"
    );
    // A cancelled probe frees its slot without a verdict.
    drop(p1);
    let p3 = b.try_acquire_at(t1).unwrap();
    p2.success();
    p3.success();
    assert_eq!(b.state_at(t1), BreakerState::HalfOpen);
}

#[test]
fn success_threshold_probes_close_it() {
    let b = breaker(
        BreakerConfig::default()
            .failure_threshold(1)
            .recovery_timeout(ms(10))
            .success_threshold(3),
    );
    let t0 = Instant::now();
    fail(&b, t0);
    let t1 = t0 + ms(10);
    for _ in 0..2 {
        b.try_acquire_at(t1).unwrap().success();
        assert_eq!(b.state_at(t1), BreakerState::HalfOpen);
    }
    b.try_acquire_at(t1).unwrap().success();
    assert_eq!(b.state_at(t1), BreakerState::Closed);
    // Closed again: a single failure (threshold 1) reopens it.
    fail(&b, t1 + ms(1));
    assert_eq!(b.times_opened(), 2);
}

#[test]
fn a_failed_probe_reopens_for_another_recovery_timeout() {
    let b = breaker(
        BreakerConfig::default()
            .failure_threshold(1)
            .recovery_timeout(ms(100)),
    );
    let t0 = Instant::now();
    fail(&b, t0);
    let t1 = t0 + ms(100);
    b.try_acquire_at(t1).unwrap().failure_at(t1);
    assert!(b.try_acquire_at(t1 + ms(99)).is_err());
    assert!(b.try_acquire_at(t1 + ms(100)).is_ok());
    assert_eq!(b.times_opened(), 2);
}

#[test]
fn zero_values_are_config_errors_naming_the_field() {
    let err = BreakerConfig::default()
        .failure_threshold(0)
        .validate()
        .unwrap_err();
    assert!(err.message().contains("breaker.failure_threshold"));
    let err = BreakerConfig::default()
        .window(Duration::ZERO)
        .validate()
        .unwrap_err();
    assert!(err.message().contains("breaker.window"));
}

#[test]
fn the_lock_free_path_follows_every_transition() {
    let b = breaker(
        BreakerConfig::default()
            .failure_threshold(2)
            .recovery_timeout(ms(30))
            .success_threshold(1),
    );
    // Closed: the unlocked path grants a plain (non-probe) permit.
    let permit = b.try_acquire().unwrap();
    assert!(!permit.probe);
    permit.failure();
    b.try_acquire().unwrap().failure();
    // Open: the unlocked path must see it.
    let err = b.try_acquire().err().unwrap();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    // Half-open once the recovery timeout has passed: a probe, not a free
    // pass (the clock is given, so nothing waits).
    let probe = b.try_acquire_at(Instant::now() + ms(40)).unwrap();
    assert!(probe.probe);
    probe.success();
    // Closed again: plain permits without the lock.
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(!b.try_acquire().unwrap().probe);
}

#[test]
fn duration_max_recovery_and_window_open_it_without_overflow() {
    let b = breaker(
        BreakerConfig::default()
            .failure_threshold(2)
            .window(Duration::MAX)
            .recovery_timeout(Duration::MAX),
    );
    let t0 = Instant::now();
    fail(&b, t0);
    fail(&b, t0 + ms(1));
    assert_eq!(b.state_at(t0 + ms(2)), BreakerState::Open);
    let later = t0 + Duration::from_secs(50 * 365 * 24 * 3600);
    assert_eq!(b.state_at(later), BreakerState::Open);
    assert!(b.try_acquire_at(later).is_err());
}
