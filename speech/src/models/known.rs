//! SHA-256 and size of the whisper.cpp ggml models published at
//! <https://huggingface.co/ggerganov/whisper.cpp>.
//!
//! Source: the Git-LFS pointers (`oid sha256:…`, `size …`) of those files at Hugging Face
//! commit `5359861c739e955e79d9a303bcbc70fb988958b1`, which is what `resolve/main` served
//! when this table was written. They were not computed here (no network): each value was
//! transcribed from public model catalogues that record those LFS pointers, and every one
//! agrees across at least three independent catalogues. whisper.cpp's own
//! `models/README.md` publishes SHA-1 digests only, so it could not be used directly.
//!
//! Only the full-precision (f16) models below are covered; quantised (`-q5_0`, `-q8_0`, …),
//! `-tdrz` and `large-v1`/`large-v2` files need `--sha256` or a server sidecar.
//! If upstream ever replaces a file, `agent models pull` fails closed (hash mismatch) until
//! this table is updated or `--sha256` is given.

/// A model whose published file we can verify without being told its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// As in `ggml-{name}.bin`.
    pub name: &'static str,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: &'static str,
    /// Exact size in bytes.
    pub bytes: u64,
}

/// Every model the built-in table covers.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "tiny",
        sha256: "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21",
        bytes: 77_691_713,
    },
    KnownModel {
        name: "tiny.en",
        sha256: "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f",
        bytes: 77_704_715,
    },
    KnownModel {
        name: "base",
        sha256: "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe",
        bytes: 147_951_465,
    },
    KnownModel {
        name: "base.en",
        sha256: "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002",
        bytes: 147_964_211,
    },
    KnownModel {
        name: "small",
        sha256: "1be3a9b2063867b937e64e2ec7483364a79917e157fa98c5d94b5c1fffea987b",
        bytes: 487_601_967,
    },
    KnownModel {
        name: "small.en",
        sha256: "c6138d6d58ecc8322097e0f987c32f1be8bb0a18532a3f88f734d1bbf9c41e5d",
        bytes: 487_614_201,
    },
    KnownModel {
        name: "medium",
        sha256: "6c14d5adee5f86394037b4e4e8b59f1673b6cee10e3cf0b11bbdbee79c156208",
        bytes: 1_533_763_059,
    },
    KnownModel {
        name: "medium.en",
        sha256: "cc37e93478338ec7700281a7ac30a10128929eb8f427dda2e865faa8f6da4356",
        bytes: 1_533_774_781,
    },
    KnownModel {
        name: "large-v3",
        sha256: "64d182b440b98d5203c4f9bd541544d84c605196c4f7b845dfa11fb23594d1e2",
        bytes: 3_095_033_483,
    },
    KnownModel {
        name: "large-v3-turbo",
        sha256: "1fc70f774d38eb169993ac391eea357ef47c88757ef72ee5943879b7e8e2bc69",
        bytes: 1_624_555_275,
    },
];

/// The table entry for `name`, if any.
pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        for m in KNOWN_MODELS {
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(
                m.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{}",
                m.name
            );
            assert!(m.bytes > 30_000_000, "{}", m.name);
            assert_eq!(known_model(m.name), Some(m));
        }
        let mut names: Vec<_> = KNOWN_MODELS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KNOWN_MODELS.len());
    }
}
