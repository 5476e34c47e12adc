import { Registry } from "@redwoodjs/open-do";
import { MyObject } from "./MyObject";

const registry = new Registry();
const id = "unique-instance-id";

// Get a stub to interact with the object
const stub = await registry.get(id, MyObject);

// Send a request
const response = await stub.fetch(new Request("http://localhost/increment"));
console.log(await response.text()); // "1"
