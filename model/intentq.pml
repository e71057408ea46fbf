/*
 * intentq: the claim / lease / fencing / ack protocol, for the Spin model checker.
 *
 * Modelled: the dedup store (claim, extend, complete, fail, release, lease expiry on the
 * store's clock, fencing tokens), NW workers that may crash between any two steps and
 * restart, a broker that redelivers after a visibility timeout and delivers duplicates, the
 * dead-letter queue, and the order "record the outcome, then ack". Every step is
 * asynchronous: any lease or visibility timeout may run out at any moment.
 * docs/reliability/model.md explains the properties and how to run each check.
 *
 * Model name                   Code name
 * ---------------------------  --------------------------------------------------------------
 * st[k] ABSENT / IN_PROGRESS   no record / Record.state State.IN_PROGRESS, COMPLETED, FAILED
 *   / COMPLETED / FAILED       (dedup/base.py)
 * tok[k]                       Record.token, the fencing token; 0 is "" (released, owns
 *                              nothing). A claim's token is its worker's id + 1: a worker
 *                              runs one message at a time and a crashed worker does nothing
 *                              more, so no two live claims share a token, as with uuid4().
 * lease[k]                     Record.lease_until > the store's clock
 * attempts[k]                  Record.attempts (stops at MAX_ATTEMPTS + 1: all larger
 *                              values behave alike)
 * c: Acquired / Cached /       what DedupStore.claim returns (Acquired.token is me + 1,
 *   Dead / Busy                Acquired.attempt is attempts[k]); Mismatch needs two
 *                              fingerprints for one key and is not modelled
 * OWNED(k, t)                  MemoryDedupStore._owned: IN_PROGRESS and token == t != ""
 *                              (the Redis OWNER_ONLY script and the SQL "owned" clause check
 *                              the same); a stale owner gets LeaseLost
 * complete / release / fail    DedupStore.complete / release / fail (Executor._complete,
 *                              Executor._failed, Executor._fail)
 * the heartbeat step           Executor._run's beat(): DedupStore.extend
 * LeaseClock(k)                the store's clock passing lease_until
 * more                         Acquired.attempt < max_attempts: a retryable error retries
 * spent, over[j]               Delivery.receive_count > Policy.max_receives
 *                              (ApproximateReceiveCount; it only grows; -DRECEIVE_LIMIT)
 * MAX_ATTEMPTS                 Policy.max_attempts / ToolSpec.max_attempts
 * out: Ack / AckLeaseLost /    outcome.Ack / Ack(lease_lost=True) / SendToDLQ / RetryLater
 *   SendToDLQ / RetryLater     (outcome.py)
 * dlq[k]                       a DeadLetter for intent k is in the DLQ (upserted by id)
 * settle                       the transport carrying out the outcome (sqs_batch._carry_out):
 *                              the letter first, then the delete; RetryLater changes the
 *                              message's visibility
 * msg[j] VISIBLE / INFLIGHT /  a broker message: visible, received and hidden, deleted
 *   DELETED
 * holder[j]                    who holds the latest receipt handle: only that worker's
 *                              delete or visibility change takes effect
 * Visibility(j)                the visibility timeout running out: the message comes back
 * NDUP, DUP_OF                 at-least-once delivery (or an agent sending again): a copy
 * POISON                       an intent whose tool kills its worker every time
 *
 * Switches:
 *   -DBROKEN_ACK_ON_LEASE_LOST a worker told LeaseLost acks its message instead of giving
 *                              it back (RetryLater); see "Lease lost" in model.md
 *   -DBROKEN_ACK_FIRST         acks a successful run before recording its completion
 *   -DBROKEN_NO_FENCE          completes without the token check
 *   -DMAX_STALLS=n             bounds stalls for the liveness runs (see below)
 *   -DRECEIVE_LIMIT            any receive may take the count past max_receives
 *   -DNO_HEARTBEAT             leaves the extend step out
 *   -DNW, -DNDUP, -DDUP_OF, -DMAX_CRASHES, -DMAX_ATTEMPTS, -DPOISON  the instance's size
 */

#ifndef NW
#define NW 2            /* workers */
#endif
#define NK 2            /* intents, one idempotency key each */
#ifndef NDUP
#define NDUP 1          /* duplicate deliveries (0 or 1) */
#endif
#define NM (NK + NDUP)  /* messages: one per intent, then the duplicate */
#ifndef DUP_OF
#define DUP_OF 0        /* the intent whose message the broker delivers twice */
#endif
#ifndef MAX_ATTEMPTS
#define MAX_ATTEMPTS 2
#endif
#ifndef MAX_CRASHES
#define MAX_CRASHES 1   /* crashes at arbitrary steps, besides the poison's */
#endif
#ifndef POISON
#define POISON 1        /* the intent whose tool kills its worker; NK for none */
#endif
#define NOBODY 255

/* What a worker does with its message when the store answers LeaseLost: the executor's
 * ``fenced`` gives it back (RetryLater, no attempt spent). Acking it instead, as intentq
 * 0.1 did, can delete the only message of an unsettled intent. */
#ifdef BROKEN_ACK_ON_LEASE_LOST
#define LEASE_LOST AckLeaseLost
#else
#define LEASE_LOST RetryLater
#endif

mtype = { ABSENT, IN_PROGRESS, COMPLETED, FAILED };     /* State */
mtype = { VISIBLE, INFLIGHT, DELETED };         /* a broker message */
mtype = { Acquired, Cached, Dead, Busy };               /* Claim */
mtype = { Ack, AckLeaseLost, SendToDLQ, RetryLater };   /* Outcome */

/* -- the dedup store ------------------------------------------------------------------ */
mtype st[NK] = ABSENT;
byte tok[NK];           /* 0 = "": owned by nobody; else the owning worker's id + 1 */
bool lease[NK];
byte attempts[NK];

/* -- the DLQ -------------------------------------------------------------------------- */
bool dlq[NK];

/* -- the broker ----------------------------------------------------------------------- */
mtype msg[NM];
byte intent[NM];
byte holder[NM];
bool over[NM];          /* ApproximateReceiveCount > max_receives (it only grows) */

byte crashes;           /* crashes spent of MAX_CRASHES */

/* -- the timing assumption for liveness ---------------------------------------------
 * A lease or a visibility timeout may run out under a live worker (a pause, a partition:
 * the stall fencing is for). Liveness needs such stalls to stop at some point, so liveness
 * runs bound them with -DMAX_STALLS=n; safety runs leave them unbounded. A dead worker's
 * lease and visibility timeout always run out. */
#ifdef MAX_STALLS
bool alive[NK];         /* the worker holding tok[k] has not crashed */
byte stalls;
#define OWNER_STARTS alive[k] = true
#define OWNER_DIES if :: m != NOBODY && tok[k] == me + 1 -> alive[k] = false :: else fi
#define MAY_EXPIRE(k) (!alive[k] || stalls < MAX_STALLS)
#define EXPIRE(k) if :: alive[k] -> stalls++ :: else fi; lease[k] = false
#define MAY_TIME_OUT(j) (holder[j] == NOBODY || stalls < MAX_STALLS)
#define TIME_OUT(j) if :: holder[j] != NOBODY -> stalls++ :: else fi
#else
#define OWNER_STARTS skip
#define OWNER_DIES skip
#define MAY_EXPIRE(k) true
#define EXPIRE(k) lease[k] = false
#define MAY_TIME_OUT(j) true
#define TIME_OUT(j) skip
#endif

/* -- ghosts for the properties -------------------------------------------------------- */
byte ncomplete[NK];     /* successful completes per key */
byte poison_runs;       /* times the POISON intent's tool started */

#define SETTLED(k) (st[k] == COMPLETED || dlq[k])
#define OWNED(k, t) (st[k] == IN_PROGRESS && t != 0 && tok[k] == t)
#define LIVE(m, k) (msg[m] != DELETED && intent[m] == k)
#if NM > 2
#define ANY_LIVE(k) (LIVE(0, k) || LIVE(1, k) || LIVE(2, k))
#elif NM > 1
#define ANY_LIVE(k) (LIVE(0, k) || LIVE(1, k))
#else
#define ANY_LIVE(k) LIVE(0, k)
#endif
#define ALL_SETTLED (SETTLED(0) && SETTLED(1))

/* A worker may die between any two steps: its locals are lost, its message stays hidden
 * until the visibility timeout, its lease stays until the store's clock passes it. Steps
 * that touch nothing shared are folded into their neighbours, so a crash "between" them is
 * the same as a crash before or after. */
#define CRASH_POINT \
	if \
	:: atomic { crashes < MAX_CRASHES -> crashes++; goto crashed } \
	:: true \
	fi

#define FORGET m = NOBODY; k = 0; spent = false; more = false; out = 0

/* The transport receives a message: a new receipt handle, ApproximateReceiveCount + 1. */
inline receive(j) {
	msg[j] == VISIBLE ->
	msg[j] = INFLIGHT; holder[j] = me; m = j; k = intent[j];
#ifdef RECEIVE_LIMIT
	if
	:: over[j] = true       /* this receive took the count past max_receives */
	:: true
	fi;
#endif
	spent = over[j]
}

/* The transport carries out the outcome with the message's receipt handle; a handle that
 * is no longer the latest one changes nothing. */
inline settle() {
	if
	:: out == RetryLater ->
		if
		:: msg[m] == INFLIGHT && holder[m] == me -> msg[m] = VISIBLE; holder[m] = NOBODY
		:: else
		fi
	:: else ->
		if
		:: msg[m] == INFLIGHT && holder[m] == me ->
			/* (b) acked only once the completion or the letter is durable */
			assert(out != Ack || st[k] == COMPLETED);
			assert(out != SendToDLQ || dlq[k]);
			msg[m] = DELETED; holder[m] = NOBODY;
			/* (b) no intent loses its last message before it is settled */
			assert(SETTLED(k) || ANY_LIVE(k))
		:: else
		fi
	fi
}

proctype Worker(byte me) {
	byte m = NOBODY, k;
	bool spent;     /* Delivery.receive_count > max_receives */
	bool more;      /* Acquired.attempt < max_attempts: a retryable error may retry */
	mtype c;        /* the claim's answer, only within the claim step */
	mtype out;

end_idle:
	if
	:: atomic { receive(0) }
#if NM > 1
	:: atomic { receive(1) }
#endif
#if NM > 2
	:: atomic { receive(2) }
#endif
	fi;
	CRASH_POINT;

	/* DedupStore.claim (one atomic step on the store's clock), then Executor.resolve */
	atomic {
		if
		:: st[k] == COMPLETED -> c = Cached
		:: st[k] == FAILED -> c = Dead
		:: st[k] == IN_PROGRESS && lease[k] -> c = Busy
		:: st[k] == ABSENT ->
			st[k] = IN_PROGRESS; tok[k] = me + 1; lease[k] = true; attempts[k] = 1;
			OWNER_STARTS; c = Acquired
		:: st[k] == IN_PROGRESS && !lease[k] ->   /* an expired or released lease: taken over */
			tok[k] = me + 1; lease[k] = true; OWNER_STARTS; c = Acquired;
			if
			:: attempts[k] <= MAX_ATTEMPTS -> attempts[k]++
			:: else
			fi
		fi;
		if
		:: c == Cached -> c = 0; out = Ack; goto ack
		:: c == Dead -> c = 0; goto letter            /* the same letter id again */
		:: c == Busy && spent -> c = 0; goto letter   /* TooManyReceives */
		:: c == Busy && !spent -> c = 0; out = RetryLater; goto ack
		:: c == Acquired && (attempts[k] > MAX_ATTEMPTS || spent) -> c = 0; goto fail /* CrashLoop */
		:: c == Acquired && !(attempts[k] > MAX_ATTEMPTS || spent) -> c = 0
		fi;
		more = (attempts[k] < MAX_ATTEMPTS);
		/* Executor._run: the tool starts */
		if
		:: k == POISON ->
			poison_runs++;
			/* (d) a message that kills its worker runs at most max_attempts times */
			assert(poison_runs <= MAX_ATTEMPTS);
			goto crashed                                           /* it kills the worker */
		:: else
		fi
	}
#ifndef NO_HEARTBEAT
	if
	:: d_step { OWNED(k, me + 1) -> lease[k] = true }   /* a heartbeat: extend */
	:: true                                           /* no beat in time, or LeaseLost */
	fi;
#endif
	CRASH_POINT;                                      /* the side effect happened */
	if
	:: goto complete                                  /* the tool returned */
	:: more -> goto release                           /* retryable, attempts left */
	:: goto fail                                      /* permanent, or retries exhausted */
	fi;

complete:
#ifdef BROKEN_ACK_FIRST
	atomic { out = Ack; settle() }     /* the message is gone before anything is recorded */
	CRASH_POINT;
#endif
	atomic {
#ifdef BROKEN_NO_FENCE
		if
		:: true ->      /* the store writes without looking at the token */
#else
		if
		:: OWNED(k, me + 1) ->
#endif
			/* (a) completed at most once, never by a fenced owner */
			assert(st[k] == IN_PROGRESS && tok[k] == me + 1);
			ncomplete[k]++;
			assert(ncomplete[k] == 1);
			st[k] = COMPLETED; tok[k] = 0; lease[k] = false; out = Ack
		:: else -> out = LEASE_LOST
		fi
	}
#ifdef BROKEN_ACK_FIRST
	atomic { FORGET; goto end_idle }
#endif
	CRASH_POINT;
	goto ack;

release:
	atomic {
		if
		:: OWNED(k, me + 1) -> tok[k] = 0; lease[k] = false; out = RetryLater
		:: else -> out = LEASE_LOST
		fi
	}
	CRASH_POINT;
	goto ack;

fail:
	atomic {
		if
		:: OWNED(k, me + 1) -> st[k] = FAILED; tok[k] = 0; lease[k] = false
		:: else -> out = LEASE_LOST; goto ack
		fi
	}
	CRASH_POINT;
letter:
	atomic { dlq[k] = true; out = SendToDLQ }     /* the DLQ put: upserted by letter id */
	CRASH_POINT;
ack:
	atomic { settle(); FORGET }
	goto end_idle;

crashed:
	atomic {
		OWNER_DIES;
		/* nobody will use the dead worker's receipt handle */
		if
		:: m != NOBODY && holder[m] == me -> holder[m] = NOBODY
		:: else
		fi;
		FORGET;
		goto end_idle   /* the process restarts with nothing */
	}
}

/* The store's clock passes a key's lease_until. */
proctype LeaseClock(byte k) {
end:
	do
	:: d_step { lease[k] && MAY_EXPIRE(k) -> EXPIRE(k) }
	od
}

/* A hidden message's visibility timeout runs out: it is delivered again. */
proctype Visibility(byte j) {
end:
	do
	:: d_step { msg[j] == INFLIGHT && MAY_TIME_OUT(j) -> TIME_OUT(j); msg[j] = VISIBLE; holder[j] = NOBODY }
	od
}

init {
	byte i;
	atomic {
		/* Each intent is sent once; with NDUP the broker also holds a second copy of
		 * intent DUP_OF's message from the start. Nothing makes a worker take a message
		 * early, so the copy may be delivered at any time, also after the first was acked. */
		i = 0;
		do
		:: i < NM ->
			msg[i] = VISIBLE; holder[i] = NOBODY;
			if
			:: i < NK -> intent[i] = i
			:: else -> intent[i] = DUP_OF
			fi;
			run Visibility(i);
			i++
		:: else -> break
		od;
		i = 0;
		do
		:: i < NK -> run LeaseClock(i); i++
		:: else -> break
		od;
		i = 0;
		do
		:: i < NW -> run Worker(i); i++
		:: else -> break
		od
	}
}

/* (c) every intent sent ends completed or dead-lettered (check with -a -f) */
ltl settled { <>[] ALL_SETTLED }

#if POISON < NK
/* (d) the intent that kills its worker every time ends in the DLQ, never completed */
ltl poison { <>[] (dlq[POISON] && st[POISON] != COMPLETED) }
#endif
