-- wrk script: POST a fixed form body with optional HTTP Basic client credentials.
-- Environment: FORM (the urlencoded body), BASIC (base64 of "id:secret", optional).
wrk.method = "POST"
wrk.body = os.getenv("FORM")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local basic = os.getenv("BASIC")
if basic and basic ~= "" then
  wrk.headers["Authorization"] = "Basic " .. basic
end

-- Count non-2xx answers so a broken setup cannot pass as a fast one.
local failures = 0
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("non-200 answers: %d\n", failures))
end
