// A runtime host written in Node.js with no packages, from docs/protocol.md alone.
//
// It registers the stateless service type "EchoType" (or the types named in argv), answers
// OpenReplica with an address naming the replica, ChangeRole, CloseReplica, Ping and Shutdown,
// and exits 0 when the agent closes the channel. Anything it does not understand gets a Fault.
"use strict";

const net = require("net");

const MAX_FRAME = 1024 * 1024;
const fd = Number.parseInt(process.env.FABRICHOST_CHANNEL_FD ?? "", 10);
if (!Number.isInteger(fd)) {
  process.stderr.write("FABRICHOST_CHANNEL_FD is not set\n");
  process.exit(2);
}
const types = process.argv.length > 2 ? process.argv.slice(2) : ["EchoType"];
const socket = new net.Socket({ fd, readable: true, writable: true });

let nextId = 0;
const pending = new Map(); // our request id -> what to do with the reply
const replicas = new Map(); // "partition/replica" -> address
let buffer = Buffer.alloc(0);

function send(message) {
  const payload = Buffer.from(JSON.stringify(message), "utf8");
  const header = Buffer.alloc(4);
  header.writeUInt32BE(payload.length, 0);
  socket.write(Buffer.concat([header, payload]));
}

function request(message, onReply) {
  nextId += 1;
  pending.set(nextId, onReply);
  send({ type: message.type, id: nextId, ...message });
}

// Flush what was written, then close the channel for good: the process exits once no handle is
// left. (end() alone only half-closes and would keep reading from the agent.)
function finish(code) {
  process.exitCode = code;
  socket.end(() => socket.destroy());
}

function fault(text) {
  send({ type: "Fault", code: "ProtocolViolation", message: text });
  finish(1);
}

function key(message) {
  return `${message.partition_id}/${message.replica_id}`;
}

function handle(message) {
  switch (message.type) {
    case "OpenReplica": {
      if (!types.includes(message.service_type)) {
        send({ type: "Error", re: message.id, code: "ServiceTypeNotRegistered", message: message.service_type });
        return;
      }
      const address = `echo://${process.pid}/${message.partition_id}/${message.replica_id}`;
      replicas.set(key(message), address);
      send({
        type: "ReplicaOpened",
        re: message.id,
        partition_id: message.partition_id,
        replica_id: message.replica_id,
        address,
      });
      return;
    }
    case "ChangeRole": {
      const address = `${replicas.get(key(message)) ?? ""}/${message.role}`;
      send({ type: "RoleChanged", re: message.id, address });
      return;
    }
    case "CloseReplica":
      replicas.delete(key(message));
      send({ type: "ReplicaClosed", re: message.id });
      return;
    case "AbortReplica":
      replicas.delete(key(message));
      return;
    case "ConfigChanged":
      return;
    case "Ping":
      send({ type: "Pong", re: message.id });
      return;
    case "Shutdown":
      replicas.clear();
      send({ type: "ShutdownComplete", re: message.id });
      finish(0);
      return;
    case "Fault":
      process.stderr.write(`faulted by the agent: ${message.message}\n`);
      finish(1);
      return;
    default: {
      const onReply = message.re !== undefined ? pending.get(message.re) : undefined;
      if (onReply === undefined) {
        fault(`unexpected ${message.type}`);
        return;
      }
      pending.delete(message.re);
      onReply(message);
    }
  }
}

socket.on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  while (buffer.length >= 4) {
    const length = buffer.readUInt32BE(0);
    if (length === 0 || length > MAX_FRAME) {
      fault(`bad frame length ${length}`);
      return;
    }
    if (buffer.length < 4 + length) return;
    const payload = buffer.subarray(4, 4 + length).toString("utf8");
    buffer = buffer.subarray(4 + length);
    let message;
    try {
      message = JSON.parse(payload);
    } catch (error) {
      fault(`frame is not valid JSON: ${error.message}`);
      return;
    }
    handle(message);
  }
});

socket.on("end", () => {
  // EOF: the agent is gone. Close every replica (nothing to do here) and exit.
  replicas.clear();
  finish(0);
});
socket.on("error", (error) => {
  process.stderr.write(`channel error: ${error.message}\n`);
});

request({ type: "Hello", versions: [1], pid: process.pid, runtime: `node/${process.versions.node}` }, (reply) => {
  if (reply.type !== "Welcome") {
    process.stderr.write(`refused: ${JSON.stringify(reply)}\n`);
    finish(1);
    return;
  }
  for (const serviceType of types) {
    request({ type: "RegisterServiceType", service_type: serviceType }, (answer) => {
      if (answer.type !== "ServiceTypeRegistered") fault(`type ${serviceType} refused`);
    });
  }
});
