import { OpenDO } from "@redwoodjs/open-do";

export class MyObject extends OpenDO {
  async fetch(request: Request) {
    // URL routing
    const url = new URL(request.url);
    
    if (url.pathname === "/increment") {
      // Use the storage API (Key-Value or SQL)
      let val = await this.storage.get("counter") || 0;
      val++;
      await this.storage.put("counter", val);
      return new Response(val.toString());
    }

    return new Response("Hello from Project Sourdough!");
  }
  
  async alarm() {
    console.log("Scheduled alarm triggered!");
  }
}
