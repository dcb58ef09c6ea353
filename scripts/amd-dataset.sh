#!/usr/bin/env bash
# Builds the answering-machine detection set: audio/tests/data/amd/*.wav + labels.tsv.
#
# What a call sounds like from the moment it is answered: people saying a short "Hello?" and
# waiting (some with a second "Hello?", some with a longer "Good morning, …" that a detector
# may well get wrong), and answering machines playing a greeting of varied length followed by
# a beep (400–2000 Hz, 150–800 ms) — or no beep at all. Voices: espeak-ng (several voices,
# speeds and pitches) and the Piper clips of audio/tests/data. Some recordings get white noise
# or "line noise" (brown noise and 50 Hz hum). Everything ends as a telephone line delivers it:
# 8 kHz, through G.711 µ-law, stored as 16-bit PCM WAV.
#
# labels.tsv: name, label (human|machine), beep_end_ms (end of the beep from the answer, or -),
# what is said. The committed files are what the tests use; re-running makes slightly
# different noise (sox -R keeps it repeatable on one machine) but the same labels.
#
# Needs espeak-ng and sox (scripts/deps.sh test installs both).
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=audio/tests/data/amd
SRC=audio/tests/data
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
rm -f "$OUT"/*.wav
printf 'name\tlabel\tbeep_end_ms\tsays\n' > "$OUT/labels.tsv"

n=0
# part files of the recording being built, and the beep's end (ms) once known
PARTS=()
BEEP_END=-

# say VOICE SPEED PITCH TEXT: a spoken part.
say() {
  n=$((n + 1))
  espeak-ng -v "$1" -s "$2" -p "$3" -w "$TMP/raw$n.wav" "$4"
  sox "$TMP/raw$n.wav" -r 16000 -c 1 -b 16 "$TMP/p$n.wav"
  PARTS+=("$TMP/p$n.wav")
}
# clip NAME [SECONDS]: a Piper clip from audio/tests/data, optionally cut to SECONDS.
clip() {
  n=$((n + 1))
  if [ $# -ge 2 ]; then
    sox "$SRC/$1_16k.wav" "$TMP/p$n.wav" trim 0 "$2" fade t 0 "$2" 0.05
  else
    cp "$SRC/$1_16k.wav" "$TMP/p$n.wav"
  fi
  PARTS+=("$TMP/p$n.wav")
}
# pause SECONDS
pause() {
  n=$((n + 1))
  sox -n -r 16000 -c 1 -b 16 "$TMP/p$n.wav" trim 0 "$1"
  PARTS+=("$TMP/p$n.wav")
}
# beep HZ SECONDS: a steady tone with 5 ms ramps; records where it ends.
beep() {
  n=$((n + 1))
  sox -n -r 16000 -c 1 -b 16 "$TMP/p$n.wav" synth "$2" sine "$1" vol 0.35 fade t 0.005 "$2" 0.005
  PARTS+=("$TMP/p$n.wav")
  local total=0 d
  for p in "${PARTS[@]}"; do
    d=$(soxi -D "$p")
    total=$(echo "$total + $d" | bc -l)
  done
  BEEP_END=$(printf '%.0f' "$(echo "$total * 1000" | bc -l)")
}
# emit NAME LABEL NOISE SAYS: joins the parts, adds NOISE (none|white-45|white-35|line),
# passes it through a µ-law line at 8 kHz, and writes the WAV and its label.
emit() {
  local name=$1 label=$2 noise=$3 says=$4
  sox "${PARTS[@]}" "$TMP/joined.wav"
  local dur
  dur=$(soxi -D "$TMP/joined.wav")
  case $noise in
    none) cp "$TMP/joined.wav" "$TMP/noisy.wav" ;;
    white-45) sox -R -n -r 16000 -c 1 -b 16 "$TMP/noise.wav" synth "$dur" whitenoise vol 0.008
              sox -m -v 1 "$TMP/joined.wav" -v 1 "$TMP/noise.wav" "$TMP/noisy.wav" ;;
    white-35) sox -R -n -r 16000 -c 1 -b 16 "$TMP/noise.wav" synth "$dur" whitenoise vol 0.025
              sox -m -v 1 "$TMP/joined.wav" -v 1 "$TMP/noise.wav" "$TMP/noisy.wav" ;;
    line) sox -R -n -r 16000 -c 1 -b 16 "$TMP/noise.wav" synth "$dur" brownnoise vol 0.02 \
            synth "$dur" sine mix 50 vol 0.5
          sox -m -v 1 "$TMP/joined.wav" -v 1 "$TMP/noise.wav" "$TMP/noisy.wav" ;;
  esac
  sox "$TMP/noisy.wav" -r 8000 -e u-law "$TMP/line.wav"
  sox "$TMP/line.wav" -e signed-integer -b 16 "$OUT/$name.wav"
  printf '%s\t%s\t%s\t%s\n' "$name" "$label" "$BEEP_END" "$says" >> "$OUT/labels.tsv"
  PARTS=()
  BEEP_END=-
}

# --- people: a short answer, then waiting for us to speak ------------------------------------
pause 0.4; say en-us 170 50 "Hello?"; pause 3.0
emit human_hello human none "Hello?"
pause 0.2; say en-us+f3 160 60 "Hello?"; pause 1.6; say en-us+f3 160 60 "Hello?"; pause 1.5
emit human_hello_twice human none "Hello? … Hello?"
pause 0.6; say en-gb 175 40 "Yes?"; pause 3.0
emit human_yes human none "Yes?"
pause 0.3; say en-us+m3 180 45 "Hi."; pause 3.0
emit human_hi human white-45 "Hi."
pause 0.5; say en-us 165 55 "Hello, who is this?"; pause 2.5
emit human_who human none "Hello, who is this?"
pause 0.3; say en-gb-x-rp 170 50 "Yeah, hello?"; pause 3.0
emit human_yeah human line "Yeah, hello?"
pause 0.4; clip yes_correct; pause 2.5
emit human_yes_correct human none "Yes, that's correct."
pause 0.8; clip no_thanks; pause 2.5
emit human_no_thanks human white-45 "No, thank you."
pause 0.2; say en-us 170 50 "Hello?"; pause 3.0
emit human_hello_noise human white-35 "Hello?"
pause 0.4; say en-us+f4 175 65 "Hello?"; pause 3.0
emit human_hello_line human line "Hello?"
pause 0.5; say en-gb-scotland 160 45 "Speaking."; pause 3.0
emit human_speaking human none "Speaking."
pause 1.2; say en-us 170 50 "Hello?"; pause 2.5
emit human_late_hello human none "(1.2 s) Hello?"
pause 0.3; say en-us+f3 175 60 "Hi, this is Sarah."; pause 2.5
emit human_sarah human none "Hi, this is Sarah."
pause 0.3; say en-gb 175 45 "Good morning, Acme Plumbing, Mark speaking."; pause 2.5
emit human_business human none "Good morning, Acme Plumbing, Mark speaking. (a long greeting)"
pause 0.3; say en-us 170 50 "Hello?"; pause 1.2; say en-us 170 50 "Hello? Is anybody there?"; pause 1.5
emit human_anybody human none "Hello? … Hello? Is anybody there?"
pause 0.5; say en-us+f3 170 55 "Yes, hello?"; pause 3.0
emit human_yes_hello_noise human white-35 "Yes, hello?"

# --- answering machines: a greeting, then (mostly) a beep --------------------------------------
pause 0.3; say en-us 170 50 "Hi, you've reached Anna. Please leave a message after the tone."; pause 0.4; beep 1000 0.4; pause 1.0
emit machine_anna machine none "Hi, you've reached Anna. Please leave a message after the tone. [beep 1000 Hz]"
pause 0.2; say en-gb 165 45 "The person you are calling is not available. Please leave your message after the beep."; pause 0.5; beep 440 0.6; pause 1.0
emit machine_unavailable machine none "The person you are calling is not available… [beep 440 Hz]"
pause 0.3; say en-us+m3 175 50 "Leave a message."; pause 0.4; beep 1400 0.3; pause 1.0
emit machine_short machine none "Leave a message. [beep 1400 Hz] (a short greeting)"
pause 0.3; clip leave_message; pause 0.5; beep 850 0.5; pause 1.0
emit machine_piper_message machine none "Please tell Sarah that the delivery arrived… [beep 850 Hz]"
pause 0.2; clip long_complaint 8; pause 0.4; beep 1000 0.25; pause 1.0
emit machine_piper_long machine white-45 "Yesterday I called because… (8 s) [beep 1000 Hz]"
pause 0.3; say en-us+f3 180 60 "Hello! We're not home right now. Leave your name and number and we'll call you back as soon as we can."; pause 0.6; beep 850 0.4; pause 1.0
emit machine_not_home machine none "Hello! We're not home right now… [beep 850 Hz]"
pause 0.3; say en-us 175 50 "Thank you for calling Acme Plumbing. Our office is closed. Our hours are Monday to Friday, nine to five. Please leave a message."; pause 0.5; beep 1000 0.5; pause 1.0
emit machine_business machine line "Thank you for calling Acme Plumbing. Our office is closed… [beep 1000 Hz]"
pause 0.3; say en-gb-x-rp 170 45 "You have reached the voicemail of David Miller. I am out of the office until Monday."; pause 2.0
emit machine_no_beep machine none "You have reached the voicemail of David Miller… (no beep)"
pause 0.4; say en-us+m3 165 45 "Hi, it's Tom. Can't get to the phone. Leave a message."; pause 0.3; beep 2000 0.15; pause 1.0
emit machine_tom machine white-35 "Hi, it's Tom. Can't get to the phone… [beep 2000 Hz, 150 ms]"
pause 0.2; say en-us+f4 170 65 "Hello, you have reached the Smith family. Please leave a message and have a nice day."; pause 0.5; beep 600 0.8; pause 1.0
emit machine_smith machine none "Hello, you have reached the Smith family… [beep 600 Hz, 800 ms]"
pause 0.3; say en-gb-scotland 160 45 "Sorry, I cannot take your call at the moment. Please leave a short message."; pause 0.4; beep 1000 0.4; pause 1.0
emit machine_sorry machine line "Sorry, I cannot take your call at the moment… [beep 1000 Hz]"
pause 0.5; say en-us 170 50 "The mailbox of five five five, one two three four is full."; pause 2.0
emit machine_mailbox_full machine none "The mailbox of 555 1234 is full. (no beep)"
pause 0.3; say en-us+f3 175 60 "Hello?"; pause 0.5; say en-us+f3 175 60 "Sorry, I missed your call. Please leave a message after the beep."; pause 0.4; beep 1000 0.4; pause 1.0
emit machine_hello_trick machine none "Hello? … Sorry, I missed your call… [beep 1000 Hz] (starts like a person)"
pause 0.2; clip balance_question; pause 0.5; beep 1400 0.35; pause 1.0
emit machine_piper_short machine white-45 "Hi, I would like to check the balance on my account. [beep 1400 Hz]"
pause 0.3; say en-029 170 50 "You've reached the office of Doctor Jones. For emergencies, hang up and dial nine one one. Otherwise, please leave a message."; pause 0.5; beep 900 0.5; pause 1.0
emit machine_doctor machine none "You've reached the office of Doctor Jones… [beep 900 Hz]"
pause 0.3; say en-us 190 50 "Please record your message after the tone. When you are finished, hang up or press pound for more options."; pause 0.3; beep 1200 0.3; pause 1.0
emit machine_carrier machine white-35 "Please record your message after the tone… [beep 1200 Hz]"

echo "wrote $(($(wc -l < "$OUT/labels.tsv") - 1)) recordings to $OUT"
