-- Which transport carried a call: 'sip' (the daemon's own SIP/RTP stack) or 'livekit' (a
-- LiveKit room the SIP bridge put the caller in). Existing calls were all direct SIP.
ALTER TABLE calls ADD COLUMN transport TEXT NOT NULL DEFAULT 'sip';
