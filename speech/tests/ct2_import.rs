//! CTranslate2 → ggml import: structure of the real tiny.en import, comparison with the
//! reference converter (`shared/tools/whisper/ct2_to_ggml.py`) when python3 + numpy and the
//! script are available, and typed errors on broken input.
//!
//! Env: `AGENT_TEST_CT2_DIR` (default: the directory scripts/test-models.sh unpacks),
//! `AGENT_CT2_REFERENCE` (a ggml file made by the reference converter; otherwise it is made
//! here from `AGENT_CT2_REFERENCE_SCRIPT` or `../shared/tools/whisper/ct2_to_ggml.py`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use speech::ggml::{self, TensorReader, TensorType};
use speech::{ImportError, import_ct2};

fn tmp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("speech-ct2-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

#[test]
fn imports_tiny_en_with_whisper_cpp_layout() {
    let Some(ct2) = common::ct2_dir() else { return };
    let dir = tmp_dir("layout");
    let out = dir.join("ggml-tiny.en.bin");
    let report = import_ct2(&ct2, &out).expect("import");
    assert_eq!(
        report.hparams.to_array(),
        [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]
    );
    assert_eq!(report.tensors, 167);
    assert_eq!(report.vocab_tokens, 50257);
    assert!(report.exact_sinusoids);
    assert!(report.encoder_pos_max_diff > 1e-5 && report.encoder_pos_max_diff < 5e-4);
    assert_eq!(
        report.bytes_written,
        std::fs::metadata(&out).expect("out").len()
    );
    assert!(!dir.join("ggml-tiny.en.bin.part").exists());

    let header = ggml::read_header(&out).expect("header");
    assert_eq!((header.n_mel, header.n_fft_bins), (80, 201));
    assert_eq!(header.vocab.len(), 50257);
    assert_eq!(header.vocab[50256], b"<|endoftext|>");
    assert_eq!(header.vocab[220], b" "); // "Ġ" mapped back to a space byte

    let mut tensors = TensorReader::open(&out).expect("tensors");
    let mut n = 0;
    while let Some(t) = tensors.next_tensor().expect("tensor") {
        n += 1;
        let expect_f32 = t.ne.len() < 2
            || t.name.contains("positional_embedding")
            || t.name.ends_with("conv1.bias")
            || t.name.ends_with("conv2.bias");
        assert_eq!(
            t.ty == TensorType::F32,
            expect_f32,
            "{} type {:?}",
            t.name,
            t.ty
        );
        assert!(
            !t.name.ends_with("key.bias"),
            "whisper has no key bias: {}",
            t.name
        );
        match t.name.as_str() {
            "encoder.positional_embedding" => assert_eq!(t.ne, [384, 1500]),
            "encoder.conv1.weight" => assert_eq!(t.ne, [3, 80, 384]),
            "encoder.conv1.bias" => assert_eq!(t.ne, [1, 384]),
            "decoder.token_embedding.weight" => assert_eq!(t.ne, [384, 51864]),
            "decoder.blocks.0.cross_attn.key.weight" => assert_eq!(t.ne, [384, 384]),
            "encoder.blocks.3.mlp.0.weight" => assert_eq!(t.ne, [384, 1536]),
            _ => {}
        }
        if t.name == "encoder.positional_embedding" {
            // Row 1 (t = 1), channel 0: sin(1); channel 192: cos(1).
            assert!((t.data[384] - 1f32.sin()).abs() < 1e-6);
            assert!((t.data[384 + 192] - 1f32.cos()).abs() < 1e-6);
        }
    }
    assert_eq!(n, 167);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Same bytes as the reference converter except the recomputed tables (mel filters, encoder
/// sinusoids), which may differ in the last bit. Prints the max differences.
#[test]
fn matches_reference_converter() {
    let Some(ct2) = common::ct2_dir() else { return };
    let dir = tmp_dir("reference");
    let Some(reference) = reference_output(&ct2, &dir) else {
        return;
    };
    let ours = dir.join("ours.bin");
    import_ct2(&ct2, &ours).expect("import");

    let a = ggml::read_header(&ours).expect("ours");
    let b = ggml::read_header(&reference).expect("reference");
    assert_eq!(a.hparams, b.hparams);
    assert_eq!((a.n_mel, a.n_fft_bins), (b.n_mel, b.n_fft_bins));
    assert_eq!(a.vocab, b.vocab, "vocabularies differ");
    assert_eq!(a.tensors_offset, b.tensors_offset);
    let mel = max_diff(&a.mel_filters, &b.mel_filters);
    assert!(mel.abs <= 1e-6 && mel.ulps <= 2, "mel filters: {mel:?}");
    eprintln!("mel filters: {mel:?}");

    let (mut ta, mut tb) = (
        TensorReader::open(&ours).expect("ours"),
        TensorReader::open(&reference).expect("ref"),
    );
    let mut n = 0;
    loop {
        let (x, y) = (
            ta.next_tensor().expect("ours"),
            tb.next_tensor().expect("ref"),
        );
        let (x, y) = match (x, y) {
            (Some(x), Some(y)) => (x, y),
            (None, None) => break,
            _ => panic!("tensor counts differ after {n}"),
        };
        n += 1;
        assert_eq!((&x.name, x.ty, &x.ne), (&y.name, y.ty, &y.ne), "tensor {n}");
        let d = max_diff(&x.data, &y.data);
        if x.name == "encoder.positional_embedding" {
            eprintln!("{}: {d:?}", x.name);
            assert!(d.abs <= 1e-6 && d.ulps <= 2, "{}: {d:?}", x.name);
        } else {
            assert_eq!(d.differing, 0, "{} must be copied exactly: {d:?}", x.name);
        }
    }
    assert_eq!(n, 167);
    assert_eq!(
        std::fs::metadata(&ours).expect("ours").len(),
        std::fs::metadata(&reference).expect("ref").len()
    );
    eprintln!("{n} tensors compared with {}", reference.display());
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Debug, Default)]
struct Diff {
    abs: f32,
    ulps: u32,
    differing: usize,
}

fn max_diff(a: &[f32], b: &[f32]) -> Diff {
    assert_eq!(a.len(), b.len());
    let mut d = Diff::default();
    for (&x, &y) in a.iter().zip(b) {
        if x.to_bits() != y.to_bits() {
            d.differing += 1;
            d.abs = d.abs.max((x - y).abs());
            d.ulps = d.ulps.max(x.to_bits().abs_diff(y.to_bits()));
        }
    }
    d
}

/// The reference converter's output: given, or made with python3 + numpy, or `None` (with a
/// note) when neither is possible — the comparison needs tools outside the repo.
fn reference_output(ct2: &Path, dir: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AGENT_CT2_REFERENCE") {
        return Some(PathBuf::from(p));
    }
    let script = std::env::var_os("AGENT_CT2_REFERENCE_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/whisper/ct2_to_ggml.py")
        });
    if !script.is_file() {
        eprintln!(
            "reference comparison not run: {} not found",
            script.display()
        );
        return None;
    }
    let out = dir.join("reference.bin");
    match Command::new("python3")
        .arg(&script)
        .arg(ct2)
        .arg(&out)
        .output()
    {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => {
            eprintln!(
                "reference comparison not run: reference converter failed (numpy missing?): {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("reference comparison not run: python3: {e}");
            None
        }
    }
}

// ---- broken input (no model needed) ----

/// A CTranslate2 model.bin with the given header and variables (name, dims, dtype, bytes).
fn ct2_file(
    version: u32,
    spec: &str,
    revision: u32,
    vars: &[(&str, &[u32], u8, Vec<u8>)],
) -> Vec<u8> {
    let s = |out: &mut Vec<u8>, s: &str| {
        out.extend(((s.len() + 1) as u16).to_le_bytes());
        out.extend(s.as_bytes());
        out.push(0);
    };
    let mut b = version.to_le_bytes().to_vec();
    s(&mut b, spec);
    b.extend(revision.to_le_bytes());
    b.extend((vars.len() as u32).to_le_bytes());
    for (name, dims, dtype, data) in vars {
        s(&mut b, name);
        b.push(dims.len() as u8);
        for d in *dims {
            b.extend(d.to_le_bytes());
        }
        b.push(*dtype);
        b.extend((data.len() as u32).to_le_bytes());
        b.extend(data);
    }
    b.extend(0u32.to_le_bytes()); // no aliases
    b
}

fn dir_with(tag: &str, model: Option<Vec<u8>>, tokenizer: Option<&str>) -> PathBuf {
    let dir = tmp_dir(tag);
    if let Some(m) = model {
        std::fs::write(dir.join("model.bin"), m).expect("model.bin");
    }
    if let Some(t) = tokenizer {
        std::fs::write(dir.join("tokenizer.json"), t).expect("tokenizer.json");
    }
    dir
}

const TOKENIZER: &str = r#"{"model":{"vocab":{"a":0,"Ġb":1}}}"#;

#[test]
fn missing_files_are_named() {
    let dir = dir_with("missing", None, Some(TOKENIZER));
    let err = import_ct2(&dir, &dir.join("out.bin")).expect_err("no model.bin");
    assert!(matches!(err, ImportError::MissingFile { .. }), "{err:?}");
    assert!(err.to_string().contains("model.bin"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unsupported_version_and_spec() {
    let dir = dir_with(
        "version",
        Some(ct2_file(9, "WhisperSpec", 3, &[])),
        Some(TOKENIZER),
    );
    let err = import_ct2(&dir, &dir.join("out.bin")).expect_err("version 9");
    assert!(
        matches!(err, ImportError::UnsupportedVersion { version: 9, .. }),
        "{err:?}"
    );

    let dir2 = dir_with(
        "spec",
        Some(ct2_file(6, "TransformerSpec", 1, &[])),
        Some(TOKENIZER),
    );
    let err = import_ct2(&dir2, &dir2.join("out.bin")).expect_err("wrong spec");
    assert!(
        matches!(err, ImportError::UnsupportedSpec { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("TransformerSpec") && err.to_string().contains("model.bin"),
        "{err}"
    );
    for d in [dir, dir2] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn truncated_and_inconsistent_model_bin() {
    let mut bytes = ct2_file(
        6,
        "WhisperSpec",
        3,
        &[("encoder/num_heads", &[], 2, vec![6, 0])],
    );
    bytes.truncate(bytes.len() - 6);
    let dir = dir_with("trunc", Some(bytes), Some(TOKENIZER));
    let err = import_ct2(&dir, &dir.join("out.bin")).expect_err("truncated");
    assert!(matches!(err, ImportError::Malformed { .. }), "{err:?}");

    // Byte count disagrees with the shape.
    let bad = ct2_file(6, "WhisperSpec", 3, &[("x", &[4], 4, vec![0; 6])]);
    let dir2 = dir_with("shape", Some(bad), Some(TOKENIZER));
    let err = import_ct2(&dir2, &dir2.join("out.bin")).expect_err("byte count");
    assert!(matches!(err, ImportError::Malformed { .. }), "{err:?}");
    for d in [dir, dir2] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn missing_and_misshapen_variables() {
    let dir = dir_with(
        "novar",
        Some(ct2_file(6, "WhisperSpec", 3, &[])),
        Some(TOKENIZER),
    );
    let err = import_ct2(&dir, &dir.join("out.bin")).expect_err("empty spec");
    assert!(matches!(err, ImportError::MissingTensor { .. }), "{err:?}");

    let vars: &[(&str, &[u32], u8, Vec<u8>)] =
        &[("decoder/embeddings/weight", &[4, 2, 2], 4, vec![0; 32])];
    let dir2 = dir_with(
        "rank",
        Some(ct2_file(6, "WhisperSpec", 3, vars)),
        Some(TOKENIZER),
    );
    let err = import_ct2(&dir2, &dir2.join("out.bin")).expect_err("rank 3 embeddings");
    assert!(matches!(err, ImportError::UnexpectedRank { .. }), "{err:?}");
    assert!(!dir2.join("out.bin").exists() && !dir2.join("out.bin.part").exists());
    for d in [dir, dir2] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn bad_tokenizer_json() {
    let Some(ct2) = common::ct2_dir() else { return };
    // Real model.bin, broken tokenizers.
    for (tag, json) in [
        ("json", "{not json"),
        ("novocab", r#"{"model":{}}"#),
        ("gap", r#"{"model":{"vocab":{"a":0,"b":5}}}"#),
        ("char", r#"{"model":{"vocab":{"a":0,"€":1}}}"#),
    ] {
        let dir = dir_with(tag, None, Some(json));
        std::os::unix::fs::symlink(ct2.join("model.bin"), dir.join("model.bin")).expect("symlink");
        let err = import_ct2(&dir, &dir.join("out.bin")).expect_err(tag);
        match tag {
            "json" => assert!(matches!(err, ImportError::Json { .. }), "{err:?}"),
            "char" => assert!(
                matches!(err, ImportError::UnmappableToken { id: 1, .. }),
                "{err:?}"
            ),
            _ => assert!(matches!(err, ImportError::Tokenizer { .. }), "{err:?}"),
        }
        assert!(err.to_string().contains("tokenizer.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
