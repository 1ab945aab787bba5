-- wrk script for tests/bench/sms_load.sh: each thread posts its share of
-- the pre-signed webhooks in REQUESTS (lines "ts TAB sig TAB body"), each
-- once; a thread that runs out posts nothing more (its requests would be
-- retries, answered from the store without a ticket) and reports so.
-- Requests still in flight when wrk stops are sent but never answered:
-- the 200s are what must each have a ticket.
local threads = {}
local counter = 0

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    local total = tonumber(os.getenv("WRK_THREADS"))
    requests = {}
    local n = 0
    for line in io.lines(os.getenv("REQUESTS")) do
        if n % total == id then
            local ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
            table.insert(requests, wrk.format("POST", "/sms/generic", {
                ["Content-Type"] = "application/json",
                ["X-Hotline-Timestamp"] = ts,
                ["X-Hotline-Signature"] = sig,
            }, body))
        end
        n = n + 1
    end
    next_request = 1
    exhausted = 0
    non_200 = 0
    ok_200 = 0
end

function request()
    local r = requests[next_request]
    if r == nil then
        exhausted = exhausted + 1
        -- A harmless request that creates nothing: the health check.
        return wrk.format("GET", "/healthz")
    end
    next_request = next_request + 1
    return r
end

function response(status, headers, body)
    if status == 200 then
        ok_200 = ok_200 + 1
    else
        non_200 = non_200 + 1
    end
end

function done(summary, latency, requests)
    for _, t in ipairs(threads) do
        local sent = t:get("next_request") - 1
        io.write(string.format("thread %d: webhooks sent %d, non-200 %d, ran out %d times, answered 200 %d\n",
            t:get("id"), sent, t:get("non_200"), t:get("exhausted"), t:get("ok_200")))
    end
    io.write(string.format("latency p50 %.2f ms p90 %.2f ms p99 %.2f ms max %.2f ms\n",
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency.max / 1000))
end
