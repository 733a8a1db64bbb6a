#!/usr/bin/env bash
# Audio benchmark (a), side by side in one run (see bench/README.md): the whole ladder (Opus
# 160k/96k, AAC 256k/128k M4A fast-start, MP3 320k/128k), the EBU R128 scan and the waveform of a
# 10-minute stereo FLAC in one decode (bench/audio_bench.cpp, single-threaded like a transcode
# worker) vs the ffmpeg CLI run once per rendition with the same settings plus once for ebur128,
# one after another. Rounds alternate; medians of wall-clock seconds and the ratio.
# (b) Range streaming against nginx comes with the stream route.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"
bin=$CHORUS_BUILD/bench/audio_bench
[ -x "$bin" ] || die "audio_bench is not built (./chorus up builds it)"
rounds=${BENCH_ROUNDS:-3}
minutes=${BENCH_AUDIO_MINUTES:-10}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Music-like input: two detuned tones over pink noise, stereo 44.1 kHz.
ffmpeg -v error -y -f lavfi -i "sine=f=220:r=44100:d=$((minutes * 60))" \
  -f lavfi -i "sine=f=331:r=44100:d=$((minutes * 60))" \
  -f lavfi -i "anoisesrc=c=pink:r=44100:a=0.05:d=$((minutes * 60))" \
  -filter_complex "[0][1][2]amix=inputs=3,aformat=channel_layouts=stereo" \
  -c:a flac "$tmp/in.flac"

now() { date +%s.%N; }
ours() {
  rm -rf "$tmp/ours"
  local s; s=$(now)
  "$bin" "$tmp/in.flac" "$tmp/ours" >/dev/null
  echo "$(now) - $s" | bc -l
}
cli() {
  rm -rf "$tmp/cli"; mkdir -p "$tmp/cli"
  local s; s=$(now)
  local f=(ffmpeg -v error -y -threads 1 -i "$tmp/in.flac" -vn)
  "${f[@]}" -c:a libopus -b:a 160k -ar 48000 "$tmp/cli/opus-high.opus"
  "${f[@]}" -c:a libopus -b:a 96k -ar 48000 "$tmp/cli/opus-low.opus"
  "${f[@]}" -c:a aac -b:a 256k -movflags +faststart -f ipod "$tmp/cli/aac-high.m4a"
  "${f[@]}" -c:a aac -b:a 128k -movflags +faststart -f ipod "$tmp/cli/aac-low.m4a"
  "${f[@]}" -c:a libmp3lame -b:a 320k "$tmp/cli/mp3-high.mp3"
  "${f[@]}" -c:a libmp3lame -b:a 128k "$tmp/cli/mp3-low.mp3"
  ffmpeg -v info -nostats -threads 1 -i "$tmp/in.flac" -af ebur128=peak=true -f null - 2>/dev/null
  echo "$(now) - $s" | bc -l
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: >"$tmp/o"; : >"$tmp/p"
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then ours >>"$tmp/o"; cli >>"$tmp/p"; else cli >>"$tmp/p"; ours >>"$tmp/o"; fi
  printf '    round %d: chorus %.2f s, ffmpeg CLI x7 %.2f s\n' "$r" "$(tail -n1 "$tmp/o")" "$(tail -n1 "$tmp/p")"
done
o=$(median <"$tmp/o"); p=$(median <"$tmp/p")
printf '%-44s %10s %12s %8s\n' "(a) ladder + R128 + waveform, ${minutes} min FLAC" "chorus" "ffmpeg CLI" "speedup"
printf '%-44s %10.2f %12.2f %8.2f\n' "  median wall seconds ($rounds rounds)" "$o" "$p" "$(echo "$p / $o" | bc -l)"
