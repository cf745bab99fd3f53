// The home page's gateway facts: GET /bodhi/v1/info and GET /health, as any client would read them.
import { get } from "./api.js";

async function showGateway() {
  const status = document.getElementById("gateway-status");
  try {
    const [info, health] = await Promise.all([get("/bodhi/v1/info"), get("/health")]);
    document.getElementById("gateway-version").textContent = info.version;
    document.getElementById("gateway-remote").textContent = String(health.workers?.remote ?? 0);
    document.getElementById("gateway-local").textContent = String(health.workers?.local ?? 0);
    document.getElementById("gateway-facts").hidden = false;
    status.textContent = "Healthy: Postgres and Redis answer.";
  } catch (error) {
    status.textContent = `The gateway is not healthy: ${error.message}`;
  }
}

showGateway();
