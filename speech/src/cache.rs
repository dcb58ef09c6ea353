//! [`CachedTts`]: synthesised audio kept in memory, keyed by (voice, rate, text), so a flow's
//! fixed prompts (greeting, reprompts, goodbye) are synthesised once per process instead of
//! once per call.
//!
//! Two kinds of entries share one budget ([`CacheLimits`]: entries and bytes):
//! - **pinned** entries, made by [`CachedTts::prewarm`] with a flow's fixed prompts; they are
//!   never evicted (until [`CachedTts::unpin_all`]), and prewarming refuses prompts that would
//!   push the pinned set over the budget;
//! - **ordinary** entries, made by any [`TextToSpeech::synthesize`] that missed; they are
//!   evicted least-recently-used first. Scripted flows repeat every sentence, so caching
//!   misses pays there too; LLM sentences rarely repeat and simply age out.
//!
//! The lock is never held while synthesising. Two callers missing the same text at the same
//! moment both synthesise it (the second insert wins); prewarming at start-up avoids that for
//! the prompts every call begins with.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::tts::{Pcm, SynthesisOptions, TextToSpeech, TtsError};

/// Bounds of a [`CachedTts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheLimits {
    pub max_entries: usize,
    /// Bytes of audio plus text held.
    pub max_bytes: usize,
}

impl CacheLimits {
    pub fn new(max_entries: usize, max_bytes: usize) -> CacheLimits {
        CacheLimits {
            max_entries,
            max_bytes,
        }
    }
}

impl Default for CacheLimits {
    /// 256 entries, 32 MiB: about 200 prompts of 3 s at 24 kHz.
    fn default() -> Self {
        CacheLimits::new(256, 32 << 20)
    }
}

/// A [`TextToSpeech`] in front of another, with a bounded shared cache. Share it with `Arc`;
/// every call using the same `CachedTts` shares its entries.
pub struct CachedTts<T: ?Sized> {
    limits: CacheLimits,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
    engine: Arc<T>,
}

/// What [`CachedTts::prewarm`] (or [`TextToSpeech::prewarm`]) did.
#[derive(Debug)]
#[non_exhaustive]
pub struct PrewarmReport {
    pub requested: usize,
    /// Synthesised now and pinned.
    pub synthesized: usize,
    /// Found in the cache and pinned.
    pub already_cached: usize,
    /// Not cached, with why.
    pub skipped: Vec<PrewarmSkip>,
    pub elapsed: Duration,
}

/// A prompt [`CachedTts::prewarm`] could not pin.
#[derive(Debug)]
#[non_exhaustive]
pub struct PrewarmSkip {
    pub text: String,
    pub reason: SkipReason,
}

/// Why a prompt was not pinned.
#[derive(Debug)]
#[non_exhaustive]
pub enum SkipReason {
    /// The engine has no cache (the trait's default `prewarm`).
    NoCache,
    /// Pinning it would exceed [`CacheLimits`].
    OverBudget,
    Failed(TtsError),
}

/// Counters and occupancy of a [`CachedTts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub entries: usize,
    pub pinned: usize,
    pub bytes: usize,
}

impl PrewarmReport {
    /// A report for an engine without a cache: every text skipped with [`SkipReason::NoCache`].
    pub fn no_cache(texts: &[String]) -> PrewarmReport {
        PrewarmReport {
            requested: texts.len(),
            synthesized: 0,
            already_cached: 0,
            skipped: texts
                .iter()
                .map(|t| PrewarmSkip {
                    text: t.clone(),
                    reason: SkipReason::NoCache,
                })
                .collect(),
            elapsed: Duration::ZERO,
        }
    }
}

impl<T: TextToSpeech + ?Sized> CachedTts<T> {
    pub fn new(engine: Arc<T>, limits: CacheLimits) -> CachedTts<T> {
        CachedTts {
            limits,
            state: Mutex::new(State::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            engine,
        }
    }

    /// The engine behind the cache.
    pub fn engine(&self) -> &Arc<T> {
        &self.engine
    }

    /// Synthesises (or finds) each text with `opts` and pins it. Blocks for the synthesis of
    /// every text not yet cached, one after another; run it on a blocking pool at start-up or
    /// when flows are (re)loaded. Texts that fail or do not fit are reported, not fatal.
    pub fn prewarm(&self, texts: &[String], opts: &SynthesisOptions) -> PrewarmReport {
        let started = Instant::now();
        let mut report = PrewarmReport {
            requested: texts.len(),
            synthesized: 0,
            already_cached: 0,
            skipped: Vec::new(),
            elapsed: Duration::ZERO,
        };
        for text in texts {
            let key = Key::new(text, opts);
            if self.lock().pin_existing(&key) {
                report.already_cached += 1;
                continue;
            }
            let reason = match self.engine.synthesize(text, opts) {
                Ok(pcm) => {
                    let entry = Entry::new(&key, Arc::new(pcm));
                    if self.lock().insert_pinned(key, entry, self.limits) {
                        report.synthesized += 1;
                        continue;
                    }
                    SkipReason::OverBudget
                }
                Err(e) => SkipReason::Failed(e),
            };
            report.skipped.push(PrewarmSkip {
                text: text.clone(),
                reason,
            });
        }
        report.elapsed = started.elapsed();
        report
    }

    /// The audio for `text`, from the cache or synthesised (and then cached), shared without
    /// copying.
    pub fn get(&self, text: &str, opts: &SynthesisOptions) -> Result<Arc<Pcm>, TtsError> {
        let key = Key::new(text, opts);
        if let Some(pcm) = self.lock().touch(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(pcm);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let pcm = Arc::new(self.engine.synthesize(text, opts)?);
        let entry = Entry::new(&key, pcm.clone());
        self.lock().insert(key, entry, self.limits);
        Ok(pcm)
    }

    /// The cached audio for `text`, without synthesising or counting a hit or miss.
    pub fn cached(&self, text: &str, opts: &SynthesisOptions) -> Option<Arc<Pcm>> {
        let key = Key::new(text, opts);
        self.lock().map.get(&key).map(|e| e.pcm.clone())
    }

    /// Makes every pinned entry evictable (e.g. before prewarming reloaded flows).
    pub fn unpin_all(&self) {
        self.lock().unpin_all();
    }

    /// Drops every entry, pinned or not.
    pub fn clear(&self) {
        let mut st = self.lock();
        let evictions = st.evictions;
        *st = State::default();
        st.evictions = evictions;
    }

    pub fn stats(&self) -> CacheStats {
        let st = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: st.evictions,
            entries: st.map.len(),
            pinned: st.pinned_entries,
            bytes: st.bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: TextToSpeech + ?Sized> TextToSpeech for CachedTts<T> {
    fn synthesize(&self, text: &str, opts: &SynthesisOptions) -> Result<Pcm, TtsError> {
        self.get(text, opts).map(|pcm| Pcm::clone(&pcm))
    }

    fn prewarm(&self, texts: &[String], opts: &SynthesisOptions) -> PrewarmReport {
        CachedTts::prewarm(self, texts, opts)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    voice: Option<String>,
    rate_wpm: Option<u32>,
    text: String,
}

impl Key {
    fn new(text: &str, opts: &SynthesisOptions) -> Key {
        Key {
            voice: opts.voice.clone(),
            rate_wpm: opts.rate_wpm,
            text: text.to_owned(),
        }
    }
}

struct Entry {
    pcm: Arc<Pcm>,
    bytes: usize,
    pinned: bool,
    /// Position in `State::lru` (unpinned entries only).
    tick: u64,
}

impl Entry {
    fn new(key: &Key, pcm: Arc<Pcm>) -> Entry {
        // Audio, text, and a rough allowance for the map slot and the allocations' headers.
        let bytes =
            pcm.samples.len() * 2 + key.text.len() + key.voice.as_ref().map_or(0, String::len) + 96;
        Entry {
            pcm,
            bytes,
            pinned: false,
            tick: 0,
        }
    }
}

#[derive(Default)]
struct State {
    map: HashMap<Key, Entry>,
    /// Unpinned entries by last use, oldest first.
    lru: BTreeMap<u64, Key>,
    tick: u64,
    bytes: usize,
    pinned_entries: usize,
    pinned_bytes: usize,
    evictions: u64,
}

impl State {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// A hit: the entry becomes the most recently used.
    fn touch(&mut self, key: &Key) -> Option<Arc<Pcm>> {
        let tick = self.next_tick();
        let entry = self.map.get_mut(key)?;
        if !entry.pinned {
            let old = std::mem::replace(&mut entry.tick, tick);
            if let Some(k) = self.lru.remove(&old) {
                self.lru.insert(tick, k);
            }
        }
        Some(entry.pcm.clone())
    }

    fn insert(&mut self, key: Key, mut entry: Entry, limits: CacheLimits) {
        if entry.bytes > limits.max_bytes || limits.max_entries == 0 {
            return;
        }
        self.remove(&key);
        entry.tick = self.next_tick();
        self.lru.insert(entry.tick, key.clone());
        self.bytes += entry.bytes;
        self.map.insert(key, entry);
        self.evict(limits);
    }

    /// Inserts a pinned entry if the pinned set stays within `limits`.
    fn insert_pinned(&mut self, key: Key, mut entry: Entry, limits: CacheLimits) -> bool {
        if self.pin_existing(&key) {
            return true;
        }
        if self.pinned_entries + 1 > limits.max_entries
            || self.pinned_bytes + entry.bytes > limits.max_bytes
        {
            return false;
        }
        entry.pinned = true;
        self.pinned_entries += 1;
        self.pinned_bytes += entry.bytes;
        self.bytes += entry.bytes;
        self.map.insert(key, entry);
        self.evict(limits);
        true
    }

    /// Pins an entry already cached; false when absent.
    fn pin_existing(&mut self, key: &Key) -> bool {
        let Some(entry) = self.map.get_mut(key) else {
            return false;
        };
        if !entry.pinned {
            entry.pinned = true;
            self.lru.remove(&entry.tick);
            self.pinned_entries += 1;
            self.pinned_bytes += entry.bytes;
        }
        true
    }

    fn unpin_all(&mut self) {
        let mut ticks = Vec::new();
        for (key, entry) in self.map.iter_mut().filter(|(_, e)| e.pinned) {
            entry.pinned = false;
            ticks.push(key.clone());
        }
        for key in ticks {
            let tick = self.next_tick();
            if let Some(e) = self.map.get_mut(&key) {
                e.tick = tick;
            }
            self.lru.insert(tick, key);
        }
        self.pinned_entries = 0;
        self.pinned_bytes = 0;
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= old.bytes;
            if old.pinned {
                self.pinned_entries -= 1;
                self.pinned_bytes -= old.bytes;
            } else {
                self.lru.remove(&old.tick);
            }
        }
    }

    /// Drops least-recently-used unpinned entries until within `limits` (or none is left).
    fn evict(&mut self, limits: CacheLimits) {
        while self.map.len() > limits.max_entries || self.bytes > limits.max_bytes {
            let Some((_, key)) = self.lru.pop_first() else {
                break;
            };
            if let Some(old) = self.map.remove(&key) {
                self.bytes -= old.bytes;
                self.evictions += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Returns one sample per character; counts calls; fails on "fail".
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    impl TextToSpeech for Counting {
        fn synthesize(&self, text: &str, _: &SynthesisOptions) -> Result<Pcm, TtsError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if text == "fail" {
                return Err(TtsError::WorkerGone);
            }
            Ok(Pcm {
                samples: vec![1; text.len() * 100],
                sample_rate: 8000,
            })
        }
    }

    fn texts(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn second_request_is_a_hit_and_keys_include_voice_and_rate() {
        let cache = CachedTts::new(Arc::new(Counting::default()), CacheLimits::default());
        let opts = SynthesisOptions::default();
        let a = cache.synthesize("hello", &opts).unwrap();
        let b = cache.synthesize("hello", &opts).unwrap();
        assert_eq!(a, b);
        let mut other = SynthesisOptions {
            voice: Some("en-gb".into()),
            ..SynthesisOptions::default()
        };
        cache.synthesize("hello", &other).unwrap();
        other.rate_wpm = Some(200);
        cache.synthesize("hello", &other).unwrap();
        assert_eq!(cache.engine().calls.load(Ordering::Relaxed), 3);
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 3, 3));
    }

    #[test]
    fn lru_eviction_by_entries_and_bytes_spares_pinned() {
        let limits = CacheLimits::new(3, 10_000);
        let cache = CachedTts::new(Arc::new(Counting::default()), limits);
        let opts = SynthesisOptions::default();
        let r = cache.prewarm(&texts(&["greeting"]), &opts);
        assert_eq!((r.synthesized, r.skipped.len()), (1, 0));
        for t in ["a", "b", "c", "d"] {
            cache.synthesize(t, &opts).unwrap();
        }
        // 3 entries max: the pinned greeting plus the two most recent.
        assert!(cache.cached("greeting", &opts).is_some());
        assert!(cache.cached("a", &opts).is_none() && cache.cached("b", &opts).is_none());
        assert!(cache.cached("c", &opts).is_some() && cache.cached("d", &opts).is_some());
        // A hit refreshes: c survives the next insert, d goes.
        cache.synthesize("c", &opts).unwrap();
        cache.synthesize("e", &opts).unwrap();
        assert!(cache.cached("c", &opts).is_some() && cache.cached("d", &opts).is_none());
        // Byte bound: 60 chars = 12,000 bytes of audio is never cached.
        cache.synthesize(&"x".repeat(60), &opts).unwrap();
        assert!(cache.cached(&"x".repeat(60), &opts).is_none());
        let s = cache.stats();
        assert_eq!((s.entries, s.pinned), (3, 1));
        assert!(s.bytes <= limits.max_bytes);
        assert_eq!(s.evictions, 3);
    }

    #[test]
    fn prewarm_reports_hits_failures_and_budget() {
        let cache = CachedTts::new(Arc::new(Counting::default()), CacheLimits::new(2, 1 << 20));
        let opts = SynthesisOptions::default();
        cache.synthesize("bye", &opts).unwrap();
        let r = cache.prewarm(&texts(&["hi", "bye", "fail", "again"]), &opts);
        assert_eq!((r.requested, r.synthesized, r.already_cached), (4, 1, 1));
        assert!(matches!(r.skipped[0].reason, SkipReason::Failed(_)));
        assert!(matches!(r.skipped[1].reason, SkipReason::OverBudget));
        assert_eq!(cache.stats().pinned, 2);
        // Pinned entries are never evicted by ordinary traffic.
        for t in ["p", "q", "r"] {
            cache.synthesize(t, &opts).unwrap();
        }
        assert!(cache.cached("hi", &opts).is_some() && cache.cached("bye", &opts).is_some());
        cache.unpin_all();
        cache.synthesize("s", &opts).unwrap();
        assert_eq!(cache.stats().pinned, 0);
        assert_eq!(cache.stats().entries, 2);
        cache.clear();
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn engines_without_cache_report_no_cache() {
        let engine = Counting::default();
        let r = engine.prewarm(&texts(&["hi"]), &SynthesisOptions::default());
        assert!(matches!(r.skipped[0].reason, SkipReason::NoCache));
        assert_eq!(engine.calls.load(Ordering::Relaxed), 0);
    }
}
