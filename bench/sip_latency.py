#!/usr/bin/env python3
"""INVITE → 180 and INVITE → 200 latency from a packet capture (tcpdump -w on loopback).

Usage: sip_latency.py CAPTURE.pcap SIP_PORT

Kernel capture timestamps (µs) of the first INVITE of each Call-ID (sent to SIP_PORT, no To
tag) and of the first 180 / 200 for it (sent from SIP_PORT, CSeq method INVITE): this is the
daemon's response time as seen on the wire, SIPp's own scheduling excluded. Prints one line of
NAME=VALUE pairs (milliseconds; invite_rate is the INVITEs per second SIPp actually sent).
"""

import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xA1B2C3D4:
        endian, scale = "<", 1e-6
    elif magic == 0xA1B23C4D:
        endian, scale = "<", 1e-9
    elif magic == 0xD4C3B2A1:
        endian, scale = ">", 1e-6
    else:
        raise SystemExit(f"{path}: not a pcap file")
    link = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off : off + 16])
        pkt = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        if link == 1:  # Ethernet (Linux loopback)
            if pkt[12:14] != b"\x08\x00":
                continue
            ip = pkt[14:]
        elif link == 113:  # Linux cooked
            ip = pkt[16:]
        elif link == 276:  # Linux cooked v2
            ip = pkt[20:]
        elif link == 0:  # BSD null
            ip = pkt[4:]
        else:
            raise SystemExit(f"unsupported link type {link}")
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        sport, dport = struct.unpack(">HH", ip[ihl : ihl + 4])
        yield sec + frac * scale, sport, dport, ip[ihl + 8 :]


def header(text, name):
    for line in text.split("\r\n")[1:]:
        if not line:
            break
        n, _, v = line.partition(":")
        if n.strip().lower() == name:
            return v.strip()
    return None


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    invite, ringing, ok = {}, {}, {}
    for ts, sport, dport, payload in packets(path):
        try:
            text = payload.decode("utf-8", "replace")
        except Exception:
            continue
        call_id = header(text, "call-id") or header(text, "i")
        if not call_id:
            continue
        first = text.split("\r\n", 1)[0]
        if dport == port and first.startswith("INVITE "):
            to = header(text, "to") or header(text, "t") or ""
            if ";tag=" not in to:
                invite.setdefault(call_id, ts)
        elif sport == port and first.startswith("SIP/2.0 "):
            cseq = header(text, "cseq") or ""
            if not cseq.upper().endswith("INVITE"):
                continue
            status = first[8:11]
            if status == "180":
                ringing.setdefault(call_id, ts)
            elif status == "200":
                ok.setdefault(call_id, ts)
    r180 = [(ringing[c] - t) * 1000 for c, t in invite.items() if c in ringing]
    r200 = [(ok[c] - t) * 1000 for c, t in invite.items() if c in ok]
    times = sorted(invite.values())
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    out = {
        "invites": len(invite),
        "invite_rate": (len(times) - 1) / span if span > 0 else float("nan"),
        "with_180": len(r180),
        "with_200": len(r200),
        "i180_p50": percentile(r180, 50),
        "i180_p99": percentile(r180, 99),
        "i180_max": max(r180) if r180 else float("nan"),
        "i200_p50": percentile(r200, 50),
        "i200_p99": percentile(r200, 99),
        "i200_max": max(r200) if r200 else float("nan"),
    }
    print(
        " ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()
        )
    )


if __name__ == "__main__":
    main()
