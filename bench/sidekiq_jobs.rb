# The Sidekiq side of bench/others.py: Debian's ruby-sidekiq (6.4), Redis at $REDIS_URL.
#
#   ruby bench/sidekiq_jobs.rb enqueue N       push N no-op jobs on the queue "bench"
#   sidekiq -r ./bench/sidekiq_jobs.rb -c 4 -q bench     run them
#   ruby bench/sidekiq_jobs.rb probe N         push N probes one at a time, each after a pause,
#                                              to a running sidekiq; print their delays (JSON)
#
# The no-op job counts the jobs this process finished in memory and adds them to the
# Redis key bench:done once per 100 jobs and at the last one, so the bench knows exactly
# when all are done at almost no cost per job (Dramatiq's no-op does no Redis work either).
require "sidekiq"

Sidekiq.logger.level = Logger::WARN # no "start"/"done" line per job: Dramatiq logs none either
# redis-rb 4.6 warns on stderr at every push (Sidekiq 6.4 calls `sadd`): a write per job
# the bench's Python client does not make.
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

class NoopJob
  include Sidekiq::Worker
  sidekiq_options queue: "bench"

  COUNTER = "bench:done"
  FLUSH_EVERY = 100
  @lock = Mutex.new
  @count = 0

  class << self
    def finished
      @lock.synchronize { @count += 1 }
    end
  end

  def perform(total)
    n = self.class.finished
    if n % FLUSH_EVERY == 0
      Sidekiq.redis { |r| r.incrby(COUNTER, FLUSH_EVERY) }
    elsif n == total
      Sidekiq.redis { |r| r.incrby(COUNTER, total % FLUSH_EVERY) }
    end
  end
end

# Enqueue -> start on an idle worker, as bench/probes.py's `probe` records it for Dramatiq:
# the delay from just before the push to the job's first line, in the list bench:latency.
class ProbeJob
  include Sidekiq::Worker
  sidekiq_options queue: "bench"

  def perform(sent_at)
    Sidekiq.redis { |r| r.rpush("bench:latency", format("%.6f", Time.now.to_f - sent_at)) }
  end
end

# The same pauses as bench/run.py's `latency` (20 ms, every tenth 1.2 s), the same push a
# Sidekiq user makes (`perform_async`); waits on the probe's answer with BLPOP (no polling).
def probe(samples)
  redis = Redis.new(url: ENV.fetch("REDIS_URL"))
  ProbeJob.perform_async(Time.now.to_f) # warm up: the worker is up once this one ran
  redis.blpop("bench:latency", timeout: 60) or abort "the sidekiq worker did not run a probe within 60 s"
  delays, sends = [], []
  samples.times do
    sleep(delays.size % 10 == 0 ? 1.2 : 0.02)
    began = Time.now.to_f
    ProbeJob.perform_async(began)
    sends << (Time.now.to_f - began) * 1000
    taken = redis.blpop("bench:latency", timeout: 4) or abort "the sidekiq worker did not run a probe within 4 s"
    delays << taken[1].to_f * 1000
  end
  puts JSON.generate("delays_ms" => delays, "sends_ms" => sends)
end

if $PROGRAM_NAME == __FILE__
  if ARGV[0] == "probe"
    require "json"
    probe(Integer(ARGV[1]))
    exit
  end
  abort "usage: ruby #{__FILE__} enqueue N | probe N" unless ARGV[0] == "enqueue"
  total = Integer(ARGV[1])
  pushed = 0
  while pushed < total
    chunk = [1000, total - pushed].min
    Sidekiq::Client.push_bulk("class" => NoopJob, "args" => Array.new(chunk) { [total] })
    pushed += chunk
  end
  puts "pushed #{pushed}"
end
