// The expected behaviour of every RFC 4475 torture message (`msgs/`, rows of `manifest.tsv`),
// shared by the in-process test (`sip/tests/torture.rs`) and the over-UDP test against a
// running daemon (`agent/tests/torture_udp.rs`), which `include!` this file.
//
// Where our behaviour is one of several the RFC allows, or differs because we are a UA and not
// a registrar or proxy, the row's `why` says so.

/// What the endpoint must do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Send exactly these statuses (INVITEs: 100 at once, 180 after the application's
    /// `ringing`, which this test calls on every IncomingCall).
    Respond(&'static [u16]),
    /// A response matching no transaction: absorbed silently.
    Absorb,
    /// Unparseable and unanswerable: dropped and counted.
    Drop,
}

use Behaviour::*;

/// `(file, parses, behaviour, why)`.
pub const EXPECTED: &[(&str, bool, Behaviour, &str)] = &[
    (
        "wsinv.dat",
        true,
        Respond(&[481]),
        "well-formed; its To carries a tag, so it is a re-INVITE for a dialog we do not have: 481 is normal processing (RFC 3261 §12.2.2)",
    ),
    ("intmeth.dat", true, Respond(&[501]), "unknown method"),
    (
        "esc01.dat",
        true,
        Respond(&[100, 180]),
        "INVITE processed normally",
    ),
    (
        "escnull.dat",
        true,
        Respond(&[405]),
        "parsed (two contacts, NUL kept); we are a UA, not a registrar: REGISTER is 405 (as regaut01's row says for a UA)",
    ),
    (
        "esc02.dat",
        true,
        Respond(&[501]),
        "unknown method RE%47IST%45R",
    ),
    ("lwsdisp.dat", true, Respond(&[200]), "OPTIONS"),
    (
        "longreq.dat",
        true,
        Respond(&[100, 180]),
        "INVITE processed normally",
    ),
    (
        "dblreq.dat",
        true,
        Respond(&[405]),
        "REGISTER (UA: 405); the trailing INVITE octets are ignored, so exactly one response",
    ),
    ("semiuri.dat", true, Respond(&[200]), "OPTIONS"),
    ("transports.dat", true, Respond(&[200]), "OPTIONS"),
    (
        "mpart01.dat",
        true,
        Respond(&[405]),
        "body framed by Content-Length; MESSAGE is not a method we implement (405 with Allow)",
    ),
    ("unreason.dat", true, Absorb, "response to no transaction"),
    ("noreason.dat", true, Absorb, "response to no transaction"),
    ("badinv01.dat", false, Respond(&[400]), ""),
    (
        "clerr.dat",
        false,
        Respond(&[400]),
        "UDP: Content-Length larger than the datagram",
    ),
    ("ncl.dat", false, Respond(&[400]), ""),
    (
        "scalar02.dat",
        false,
        Respond(&[400]),
        "CSeq copied raw into the 400",
    ),
    ("scalarlg.dat", false, Drop, "a response: discarded"),
    (
        "quotbal.dat",
        false,
        Respond(&[400]),
        "we do not infer the missing quote",
    ),
    ("ltgtruri.dat", false, Respond(&[400]), ""),
    ("lwsruri.dat", false, Respond(&[400]), ""),
    (
        "lwsstart.dat",
        true,
        Respond(&[100, 180]),
        "liberal: runs of SP in the Request-Line are accepted",
    ),
    (
        "trws.dat",
        true,
        Respond(&[200]),
        "liberal: trailing SP after the version is accepted",
    ),
    (
        "escruri.dat",
        true,
        Respond(&[100, 180]),
        "liberal: the escaped headers in the Request-URI are ignored",
    ),
    (
        "baddate.dat",
        true,
        Respond(&[100, 180]),
        "liberal: Date does not matter to us",
    ),
    (
        "regbadct.dat",
        false,
        Respond(&[400]),
        "we do not infer the <>",
    ),
    ("badaspec.dat", false, Respond(&[400]), ""),
    (
        "baddn.dat",
        false,
        Respond(&[400]),
        "also has no empty line ending the headers",
    ),
    ("badvers.dat", true, Respond(&[505]), ""),
    ("mismatch01.dat", false, Respond(&[400]), ""),
    (
        "mismatch02.dat",
        false,
        Respond(&[501]),
        "method inspection first: unknown method",
    ),
    ("bigcode.dat", false, Drop, "a response: discarded"),
    (
        "badbranch.dat",
        true,
        Respond(&[200]),
        "bare z9hG4bK branch: RFC 2543 transaction matching",
    ),
    (
        "insuf.dat",
        false,
        Respond(&[400]),
        "answered with what it has (Via, CSeq) so the sender's transaction can match",
    ),
    ("unkscm.dat", true, Respond(&[416]), ""),
    (
        "novelsc.dat",
        true,
        Respond(&[416]),
        "soap.beep is never meaningful to us",
    ),
    (
        "unksm2.dat",
        true,
        Respond(&[405]),
        "parsed (isbn:, http:, name: URIs); UA, not registrar: REGISTER is 405",
    ),
    (
        "bext01.dat",
        true,
        Respond(&[420]),
        "Unsupported lists both Require tags",
    ),
    (
        "invut.dat",
        true,
        Respond(&[415]),
        "Accept: application/sdp",
    ),
    ("regaut01.dat", true, Respond(&[405]), "non-registrar UA"),
    ("multi01.dat", false, Respond(&[400]), ""),
    ("mcl01.dat", false, Respond(&[400]), ""),
    ("bcast.dat", true, Absorb, "response to no transaction"),
    (
        "zeromf.dat",
        true,
        Respond(&[200]),
        "an endpoint ignores Max-Forwards: 0",
    ),
    (
        "cparam01.dat",
        true,
        Respond(&[405]),
        "parsed (unknownparam is a contact param); UA, not registrar",
    ),
    (
        "cparam02.dat",
        true,
        Respond(&[405]),
        "parsed (unknownparam is a URI param); UA, not registrar",
    ),
    (
        "regescrt.dat",
        true,
        Respond(&[405]),
        "parsed (escaped Route kept in the URI headers); UA, not registrar",
    ),
    ("sdp01.dat", true, Respond(&[406]), "Warning 399"),
    (
        "inv2543.dat",
        true,
        Respond(&[100, 180]),
        "RFC 2543 INVITE accepted; body is the rest of the datagram",
    ),
];
