-- wrk script: POST varied case records to /cases, or batches to /cases/batch.
--
--   wrk -t2 -c32 -d15s -s bench/cases.lua http://127.0.0.1:8000 -- \
--       MODE PREFIX OUT_DIR [BATCH_SIZE] [RATE]
--
-- MODE is "single" (one record per POST /cases) or "batch" (BATCH_SIZE records
-- per POST /cases/batch). Every record carries a client record_id
-- "PREFIX-<thread>-<n>", so the stores can be searched for the run's records.
-- Each thread writes the record_ids the router accepted (HTTP 200 or 201, or
-- item status 200 or 201 in a batch) to OUT_DIR/accepted-<thread>.txt, and
-- done() writes the totals and latency percentiles to OUT_DIR/wrk.json.
-- RATE (requests per second of each thread, optional) paces the requests on a
-- fixed schedule; without it every connection sends as fast as it can.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local NAMES = {
  "María López", "José García", "Ana Hernández", "Juan Pérez", "Rosa Morales",
  "Carlos González", "Marta Rodríguez", "Luis Ramírez", "Carmen Castillo",
  "Pedro Méndez", "Sandra Cruz", "Pablo Mendoza", "Claudia Reyes",
  "Miguel Juárez", "Ingrid Estrada", "Jorge Orellana",
}
local LOCATIONS = {
  "Guatemala City", "Mixco, Guatemala", "Villa Nueva, Guatemala",
  "Quetzaltenango", "Antigua Guatemala, Sacatepéquez", "Chimaltenango",
  "Escuintla", "Cobán, Alta Verapaz", "Huehuetenango", "Flores, Petén",
}
local INFECTED_TYPES = { "communitary", "imported", "contact" }
local STATES = {
  "asymptomatic", "symptomatic", "mild", "moderate", "severe", "critical",
  "recovered", "deceased",
}

-- Main Lua state: one entry per thread, read back in done().
local threads = {}
local next_thread = 1

function setup(thread)
  thread:set("thread_number", next_thread)
  threads[next_thread] = thread
  next_thread = next_thread + 1
end

-- Thread Lua states from here to done().
local mode, prefix, batch_size
local interval_ms, next_send_ms
local sent_records, counter = 0, 0
local accepted_file

function init(args)
  mode = args[1] or "single"
  prefix = args[2] or "bench"
  -- A global, so that done() can read it with thread:get.
  out_dir = args[3] or "."
  batch_size = tonumber(args[4] or "100")
  local rate = tonumber(args[5] or "0")
  if rate > 0 then
    interval_ms = 1000 / rate
  end
  math.randomseed(thread_number * 7919 + os.time())
  accepted = 0
  rejected = 0
  failed = 0
  accepted_file = io.open(out_dir .. "/accepted-" .. thread_number .. ".txt", "w")
  -- wrk never closes a thread's Lua state, so a full buffer would keep the
  -- last ids unwritten.
  accepted_file:setvbuf("line")
end

local function pick(list)
  return list[math.random(#list)]
end

local function record_json()
  counter = counter + 1
  sent_records = sent_records + 1
  return string.format(
    '{"record_id":"%s-%d-%d","name":"%s","location":"%s","age":%d,'
      .. '"infected_type":"%s","state":"%s"}',
    prefix, thread_number, counter, pick(NAMES), pick(LOCATIONS),
    math.random(0, 99), pick(INFECTED_TYPES), pick(STATES)
  )
end

function delay()
  if not interval_ms then
    return 0
  end
  local now = now_ms()
  if not next_send_ms or next_send_ms < now - 1000 then
    -- Start, or more than a second behind: restart the schedule instead of
    -- sending a burst to catch up.
    next_send_ms = now
  end
  local slot = next_send_ms
  next_send_ms = next_send_ms + interval_ms
  return slot > now and slot - now or 0
end

local HEADERS = { ["Content-Type"] = "application/json" }

function request()
  if mode == "batch" then
    local items = {}
    for i = 1, batch_size do
      items[i] = record_json()
    end
    return wrk.format("POST", "/cases/batch", HEADERS, "[" .. table.concat(items, ",") .. "]")
  end
  return wrk.format("POST", "/cases", HEADERS, record_json())
end

function response(status, headers, body)
  if mode == "batch" then
    if status ~= 200 then
      failed = failed + batch_size
      return
    end
    for item_status, record_id in body:gmatch('"status":(%d+),"record_id":"([^"]+)"') do
      if item_status == "201" or item_status == "200" then
        accepted = accepted + 1
        accepted_file:write(record_id, "\n")
      elseif item_status:sub(1, 1) == "4" then
        rejected = rejected + 1
      else
        failed = failed + 1
      end
    end
    return
  end
  if status == 200 or status == 201 then
    accepted = accepted + 1
    accepted_file:write(body:match('"record_id":"([^"]+)"') or "", "\n")
  elseif status >= 400 and status < 500 then
    rejected = rejected + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local totals = { accepted = 0, rejected = 0, failed = 0 }
  for _, thread in ipairs(threads) do
    for key in pairs(totals) do
      totals[key] = totals[key] + (thread:get(key) or 0)
    end
  end
  local out = io.open((threads[1]:get("out_dir") or ".") .. "/wrk.json", "w")
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"timeouts":%d,"non_2xx":%d,'
      .. '"accepted":%d,"rejected":%d,"failed":%d,'
      .. '"latency_us":{"mean":%.1f,"p50":%d,"p95":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    summary.errors.status, totals.accepted, totals.rejected, totals.failed,
    latency.mean, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max
  ))
  out:close()
end
