# The server guide's §3 cURL example for POST /clone_voice, verbatim
# (/work/shared/spec/server-guide.md, "Example using `cURL`:"); tests/api/test_api_live.py runs it
# against a live server after replacing its two placeholders (host:port, /path/to/ref.wav).
curl -X POST http://localhost:8000/clone_voice \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -F "text=Hello, world" \
  -F "reference_audio_file=@/path/to/ref.wav" \
  -F "stream=false" \
  -F "response_format=wav" \
  --output output.wav
