//! Building the subsystems from configuration: flows, speech engines, LLM, VAD, SIP driver,
//! per-call data services. Each failure names the config key involved.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dialogs::{FlowRegistry, LlmClient, LlmConfig};
use tokio::sync::watch;

use crate::calls::{CallRuntime, CallScope, ServicesFactory, SpeechEngines};
use crate::config::{Config, SttProvider, TtsProvider};

/// What every call shares (flows, speech engines, LLM, VAD, data services), for `serve` and
/// `dial` alike.
pub fn call_runtime(cfg: Arc<Config>, store: store::Store) -> anyhow::Result<CallRuntime> {
    let flows = load_flows(&cfg)?;
    let engines = speech_engines(&cfg);
    let llm = llm_client(&cfg)?;
    let (vad, vad_options) = vad(&cfg)?;
    let services = services_factory(&cfg, store.clone())?;
    Ok(CallRuntime {
        store,
        engines,
        flows,
        llm,
        services,
        vad,
        vad_options,
        node: cfg.node_id(),
        config: cfg,
        sip: Arc::default(),
    })
}

/// Loads every flow in `flows.dir`; the default flow must be among them.
pub fn load_flows(cfg: &Config) -> anyhow::Result<Arc<FlowRegistry>> {
    let registry = FlowRegistry::load_dir(&cfg.flows.dir)
        .with_context(|| format!("flows.dir = {}", cfg.flows.dir.display()))?;
    anyhow::ensure!(
        registry.get(&cfg.flows.default).is_some(),
        "flows.default = {:?}: no such flow in {} (have: {:?})",
        cfg.flows.default,
        cfg.flows.dir.display(),
        registry.names()
    );
    Ok(Arc::new(registry))
}

/// Loads STT and TTS. A missing or broken model is logged with its path, not fatal: calls are
/// then answered with an apology (STT) or refused with 503 (TTS).
pub fn speech_engines(cfg: &Config) -> SpeechEngines {
    let stt = stt_engine(&cfg.stt);
    match &stt {
        Ok(_) => {
            tracing::info!(provider = ?cfg.stt.provider, model = %stt_model_name(&cfg.stt), "speech recognition ready")
        }
        Err(e) => {
            tracing::error!(error = %e, "speech recognition unavailable (stt.*); calls will be told to call back")
        }
    }
    let tts = tts_engine(&cfg.tts);
    if let Err(e) = &tts {
        tracing::error!(error = %e, "speech synthesis unavailable (tts.*); calls will be refused");
    }
    SpeechEngines::new(stt, cfg.stt.workers.max(1) as usize, tts, None)
}

fn stt_model_name(stt: &crate::config::SttConfig) -> String {
    match stt.provider {
        SttProvider::Whisper => stt.model.display().to_string(),
        SttProvider::Openai => format!("{} at {}", stt.remote_model, stt.base_url),
    }
}

fn stt_engine(stt: &crate::config::SttConfig) -> Result<Arc<dyn speech::SpeechToText>, String> {
    match stt.provider {
        SttProvider::Whisper => speech::WhisperStt::load(&stt.model, stt.threads.max(1) as usize)
            .map(|w| Arc::new(w) as Arc<dyn speech::SpeechToText>)
            .map_err(|e| e.to_string()),
        SttProvider::Openai => {
            if stt.base_url.is_empty() {
                return Err("stt.base_url is empty (needed by stt.provider = \"openai\")".into());
            }
            let mut remote = speech::RemoteSttConfig::new(&stt.base_url, &stt.remote_model)
                .with_language((!stt.language.is_empty()).then_some(stt.language.as_str()))
                .with_timeout(Duration::from_millis(stt.timeout_ms));
            if !stt.api_key.is_empty() {
                remote = remote.with_api_key(stt.api_key.expose());
            }
            speech::RemoteStt::new(remote)
                .map(|r| Arc::new(r) as Arc<dyn speech::SpeechToText>)
                .map_err(|e| format!("stt.base_url = {:?}: {e}", stt.base_url))
        }
    }
}

fn tts_engine(tts: &crate::config::TtsConfig) -> Result<Arc<dyn speech::TextToSpeech>, String> {
    let engine: Arc<dyn speech::TextToSpeech> = match tts.provider {
        TtsProvider::Espeak => {
            let mut espeak = speech::EspeakConfig::default();
            espeak.voice = tts.voice.clone();
            espeak.rate_wpm = tts.rate;
            Arc::new(speech::EspeakTts::new(espeak).map_err(|e| e.to_string())?)
        }
        TtsProvider::Openai => {
            if tts.base_url.is_empty() {
                return Err("tts.base_url is empty (needed by tts.provider = \"openai\")".into());
            }
            let mut remote =
                speech::RemoteTtsConfig::new(&tts.base_url, &tts.remote_model, &tts.voice)
                    .with_timeout(Duration::from_millis(tts.timeout_ms));
            if !tts.api_key.is_empty() {
                remote = remote.with_api_key(tts.api_key.expose());
            }
            Arc::new(
                speech::RemoteTts::new(remote)
                    .map_err(|e| format!("tts.base_url = {:?}: {e}", tts.base_url))?,
            )
        }
    };
    if tts.cache_entries == 0 {
        return Ok(engine);
    }
    // 256 sentences of ~3 s at 22–24 kHz s16 is ~35 MB; the byte cap keeps long LLM sentences
    // from growing it further.
    let limits = speech::CacheLimits::new(tts.cache_entries, 64 * 1024 * 1024);
    Ok(Arc::new(speech::CachedTts::new(engine, limits)))
}

/// The LLM client, when `llm.base_url` is set; `None` runs flows in scripted mode.
pub fn llm_client(cfg: &Config) -> anyhow::Result<Option<LlmClient>> {
    if cfg.llm.base_url.is_empty() {
        return Ok(None);
    }
    let key = cfg.llm.api_key.expose();
    let llm = LlmConfig::new(
        &cfg.llm.base_url,
        (!key.is_empty()).then_some(key),
        &cfg.llm.model,
    )
    .with_timeout_ms(cfg.llm.timeout_ms);
    Ok(Some(LlmClient::new(llm).context("llm.base_url")?))
}

/// The configured VAD kind and its options.
pub fn vad(cfg: &Config) -> anyhow::Result<(audio::VadKind, audio::vad::VadOptions)> {
    let kind: audio::VadKind = cfg
        .vad
        .kind
        .parse()
        .with_context(|| format!("vad.kind = {:?}", cfg.vad.kind))?;
    let mut options = audio::vad::VadOptions::new();
    if kind.needs_files() {
        options = options.with_silero(audio::vad::SileroPaths::new(
            cfg.vad.silero_model.clone(),
            cfg.vad.onnxruntime_library.clone(),
        ));
        // Fail at start, not on the first call.
        kind.build_with(16_000, &options)
            .context("vad.silero_model / vad.onnxruntime_library")?;
    }
    Ok((kind, options))
}

/// The SIP driver's settings: listen address, codecs, admission limits and trunks.
pub fn sip_driver_config(cfg: &Config) -> anyhow::Result<sip::driver::DriverConfig> {
    let mut endpoint = sip::Config::new(cfg.sip.listen);
    endpoint.user_agent = cfg.sip.user_agent.clone();
    if let Some(bad) = cfg
        .sip
        .codecs
        .iter()
        .find(|c| crate::trunks::codecs(std::slice::from_ref(c)).is_empty())
    {
        anyhow::bail!("sip.codecs: {bad:?} is not supported (opus, PCMU, PCMA)");
    }
    endpoint.codecs = crate::trunks::codecs(&cfg.sip.codecs);
    endpoint.allowed_sources = crate::trunks::allowed_sources(cfg);
    endpoint.rate_limit = (cfg.sip.rate_limit_per_sec > 0).then(|| sip::RateLimit {
        per_second: f64::from(cfg.sip.rate_limit_per_sec),
        burst: cfg.sip.rate_limit_burst,
        ..sip::RateLimit::default()
    });
    endpoint.max_concurrent_calls = Some(cfg.call.max_concurrent as usize);
    let external_ip = if cfg.sip.external_address.is_empty() {
        None
    } else {
        Some(
            cfg.sip
                .external_address
                .parse()
                .context("sip.external_address: not an IP address")?,
        )
    };
    Ok(sip::driver::DriverConfig {
        listen: cfg.sip.listen,
        external_ip,
        rtp_ports: cfg.sip.rtp_port_min..=cfg.sip.rtp_port_max,
        endpoint,
        inbound_queue: 64,
        tcp: cfg.sip.tcp,
        trunks: crate::trunks::driver_trunks(cfg)?,
    })
}

/// Per-call data services over the store.
pub fn services_factory(cfg: &Config, store: store::Store) -> anyhow::Result<ServicesFactory> {
    let phones = crm::PhoneNormalizer::new(&cfg.crm.default_region)
        .with_context(|| format!("crm.default_region = {:?}", cfg.crm.default_region))?;
    // billing (issue 11): send_payment_link goes through Dodo + the mail outbox when set up.
    let links = crate::billing::payment_links(cfg, &store)?;
    Ok(Arc::new(
        move |scope: &CallScope, events| -> Arc<dyn dialogs::CallServices> {
            let services = crm::StoreCallServices::new(
                store.clone(),
                &scope.tenant_id,
                &scope.call_id,
                phones,
                events,
            );
            Arc::new(match &links {
                Some(links) => services.with_payment_links(links.clone()),
                None => services,
            })
        },
    ))
}

/// Publishes the SIP core's counters as Prometheus metrics every second.
pub async fn export_sip_stats(sip: sip::driver::SipHandle, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let s = sip.stats();
        metrics::gauge!("agent_sip_datagrams_received").set(s.datagrams_received as f64);
        metrics::gauge!("agent_sip_requests_received").set(s.requests_received as f64);
        metrics::gauge!("agent_sip_dropped_malformed").set(s.dropped_malformed as f64);
    }
}
