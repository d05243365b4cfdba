import data from "virtual:limner-manifest";
import { asManifest, entriesInOrder, type LimnerEntry, type Mode } from "limner-images";
import { LimnerImage } from "limner-images/react";

const manifest = asManifest(data);
// production builds load the stored variants; `npm run dev` shows the committed placeholders unless
// VITE_LIMNER_MEDIA_BASE names a media server (`limner media serve`)
const mode: Mode = import.meta.env.PROD ? "production" : "development";
const base: string | undefined = import.meta.env.VITE_LIMNER_MEDIA_BASE || undefined;
// three columns up to 1080 px wide, one on narrow screens
const SIZES = "(min-width: 1112px) 350px, (min-width: 720px) 32vw, 100vw";

function eraLabel(era: string | undefined): string {
  return (era ?? "other").replace(/-/g, " ");
}

function groupByEra(entries: LimnerEntry[]): Array<[string, LimnerEntry[]]> {
  const groups: Array<[string, LimnerEntry[]]> = [];
  for (const entry of entries) {
    const era = entry.era ?? "other";
    const last = groups[groups.length - 1];
    if (last && last[0] === era) last[1].push(entry);
    else groups.push([era, [entry]]);
  }
  return groups;
}

export function App() {
  const entries = entriesInOrder(manifest);
  let index = 0;
  return (
    <main>
      <header>
        <h1>A timeline of Jewish history</h1>
        <p>
          {entries.length} events, illustrated by Limner (images: <code>limner-images</code>).
        </p>
      </header>
      {groupByEra(entries).map(([era, items]) => (
        <section key={`${era}-${items[0]!.id}`} className="era">
          <h2>{eraLabel(era)}</h2>
          <ol className="events">
            {items.map((entry) => {
              const priority = index++ < 3; // the first row is above the fold
              return (
                <li key={entry.id} className="event">
                  <LimnerImage manifest={manifest} id={entry.id} sizes={SIZES} priority={priority} mode={mode} base={base} />
                  <time>{entry.date ?? entry.year}</time>
                  <h3>{entry.title}</h3>
                </li>
              );
            })}
          </ol>
        </section>
      ))}
    </main>
  );
}
