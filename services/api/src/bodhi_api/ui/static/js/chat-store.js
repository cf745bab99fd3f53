// Chats kept in this browser only (IndexedDB), one database per signed-in user so that two people sharing a
// browser do not see each other's chats. The gateway stores no conversation.
//   chat: {id, title, model, messages: [{role, content, model, usage, error, stopped, at}], createdAt, updatedAt}

const STORE = "chats";

function request(idbRequest) {
  return new Promise((resolve, reject) => {
    idbRequest.onsuccess = () => resolve(idbRequest.result);
    idbRequest.onerror = () => reject(idbRequest.error);
  });
}

export class ChatStore {
  constructor(userId) {
    this.name = `bodhi-chats-${userId}`;
    this.db = null;
  }

  async open() {
    if (this.db) return this.db;
    const opening = indexedDB.open(this.name, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore(STORE, { keyPath: "id" });
    this.db = await request(opening);
    return this.db;
  }

  async store(mode) {
    return (await this.open()).transaction(STORE, mode).objectStore(STORE);
  }

  // Every chat, the most recently used first.
  async list() {
    const chats = await request((await this.store("readonly")).getAll());
    return chats.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  async get(id) {
    return (await request((await this.store("readonly")).get(id))) ?? null;
  }

  async put(chat) {
    await request((await this.store("readwrite")).put(chat));
  }

  async delete(id) {
    await request((await this.store("readwrite")).delete(id));
  }
}

// An id without crypto.randomUUID, which browsers give only to secure contexts (a gateway on a LAN address over
// plain HTTP is not one).
export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function newChat(model = "") {
  const now = Date.now();
  return { id: newId(), title: "", model, messages: [], createdAt: now, updatedAt: now };
}
