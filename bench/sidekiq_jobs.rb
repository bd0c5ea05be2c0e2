# The Sidekiq side of bench/others.py: Debian's ruby-sidekiq (6.4), Redis at $REDIS_URL.
#
#   ruby bench/sidekiq_jobs.rb enqueue N       push N no-op jobs on the queue "bench"
#   sidekiq -r ./bench/sidekiq_jobs.rb -c 4 -q bench     run them
#
# The no-op job counts the jobs this process finished in memory and adds them to the
# Redis key bench:done once per 100 jobs and at the last one, so the bench knows exactly
# when all are done at almost no cost per job (Dramatiq's no-op does no Redis work either).
require "sidekiq"

Sidekiq.logger.level = Logger::WARN # no "start"/"done" line per job: Dramatiq logs none either

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

if $PROGRAM_NAME == __FILE__
  abort "usage: ruby #{__FILE__} enqueue N" unless ARGV[0] == "enqueue"
  total = Integer(ARGV[1])
  pushed = 0
  while pushed < total
    chunk = [1000, total - pushed].min
    Sidekiq::Client.push_bulk("class" => NoopJob, "args" => Array.new(chunk) { [total] })
    pushed += chunk
  end
  puts "pushed #{pushed}"
end
