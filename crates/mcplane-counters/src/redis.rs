//! Counters in Redis, shared by every replica. Each admission is one Lua script, so checking and
//! charging every level is atomic across replicas; windows are fixed and computed from Redis's
//! own clock (`TIME`), so replicas with skewed clocks still count in the same minute. Gauges (in
//! flight) carry a safety TTL so a replica that dies holding counts does not block forever.

use async_trait::async_trait;
use mcplane_core::limits::{Admission, Charge, Counters, CountersError};
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use std::time::Duration;

/// How long an in-flight count survives without being refreshed (a crashed replica's leftovers).
pub const GAUGE_TTL: Duration = Duration::from_secs(600);

/// ARGV per key: amount, limit, window ms (0 = gauge), gauge TTL ms. Returns `{1, count…}` when
/// admitted or `{0, index, count, reset_ms}` when refused (nothing charged).
const ADMIT: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keys, counts = {}, {}
for i = 1, #KEYS do
  local amount = tonumber(ARGV[4 * i - 3])
  local limit = tonumber(ARGV[4 * i - 2])
  local window = tonumber(ARGV[4 * i - 1])
  local key = KEYS[i]
  if window > 0 then key = key .. ':' .. math.floor(now_ms / window) end
  local cur = tonumber(redis.call('GET', key) or '0')
  if cur + amount > limit then
    local reset = -1
    if window > 0 then reset = window - (now_ms % window) end
    return {0, i - 1, cur, reset}
  end
  keys[i] = key
  counts[i] = cur + amount
end
local out = {1}
for i = 1, #KEYS do
  local window = tonumber(ARGV[4 * i - 1])
  redis.call('INCRBY', keys[i], ARGV[4 * i - 3])
  if window > 0 then
    redis.call('PEXPIRE', keys[i], window * 2)
  else
    redis.call('PEXPIRE', keys[i], tonumber(ARGV[4 * i]))
  end
  out[#out + 1] = counts[i]
end
return out
"#;

/// KEYS[1] base key; ARGV: window ms (0 = gauge), delta. Never below zero.
const ADJUST: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local key = KEYS[1]
if window > 0 then key = key .. ':' .. math.floor(now_ms / window) end
local cur = redis.call('GET', key)
if not cur then return 0 end
local v = tonumber(cur) + tonumber(ARGV[2])
if v < 0 then v = 0 end
redis.call('SET', key, v, 'KEEPTTL')
return v
"#;

/// KEYS[1] gauge; never below zero.
const RELEASE: &str = r#"
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"#;

/// See the module docs.
pub struct RedisCounters {
    conn: ConnectionManager,
    prefix: String,
    admit: Script,
    adjust: Script,
    release: Script,
}

/// The error's category, not its message (messages may carry connection details).
fn unavailable(e: redis::RedisError) -> CountersError {
    CountersError(format!("redis: {:?}", e.kind()))
}

impl RedisCounters {
    /// Connects to `url` (`redis://…`, `rediss://…`); keys are prefixed with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisCounters, CountersError> {
        let client = redis::Client::open(url)
            .map_err(|_| CountersError("redis: the URL is not valid".into()))?;
        let conn = ConnectionManager::new(client).await.map_err(unavailable)?;
        Ok(RedisCounters {
            conn,
            prefix: prefix.to_string(),
            admit: Script::new(ADMIT),
            adjust: Script::new(ADJUST),
            release: Script::new(RELEASE),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn admit(&self, charges: &[Charge]) -> Result<Admission, CountersError> {
        let mut invocation = self.admit.prepare_invoke();
        for c in charges {
            invocation
                .key(self.key(&c.key))
                .arg(c.amount)
                .arg(c.limit)
                .arg(c.window.map_or(0, |w| w.as_millis() as u64))
                .arg(c.ttl.unwrap_or(GAUGE_TTL).as_millis() as u64);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let ints: Vec<i64> = reply.iter().filter_map(int).collect();
        match ints.as_slice() {
            [1, counts @ ..] => Ok(Admission::Admitted(
                counts.iter().map(|c| (*c).max(0) as u64).collect(),
            )),
            [0, index, count, reset] => Ok(Admission::Refused {
                index: (*index).max(0) as usize,
                count: (*count).max(0) as u64,
                reset_in: (*reset >= 0).then(|| Duration::from_millis(*reset as u64)),
            }),
            _ => Err(CountersError(
                "redis: unexpected reply to the admission script".into(),
            )),
        }
    }

    async fn adjust(
        &self,
        key: &str,
        window: Option<Duration>,
        delta: i64,
    ) -> Result<(), CountersError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .adjust
            .key(self.key(key))
            .arg(window.map_or(0, |w| w.as_millis() as u64))
            .arg(delta)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), CountersError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .release
            .key(self.key(key))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
