// The rule editor widget, bundled on its own (web/cm.js) and loaded only by
// the editor pages, so the overview stays small. CodeMirror 6 with the Lua
// legacy mode, line numbers, history, bracket matching, and an inline error:
// the line that failed to compile is marked and the message is shown under
// it (setError / clearError).
import { EditorState, StateEffect, StateField } from '@codemirror/state';
import {
  Decoration, EditorView, WidgetType, drawSelection, highlightActiveLine, highlightActiveLineGutter,
  keymap, lineNumbers,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import {
  StreamLanguage, bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting,
} from '@codemirror/language';
import { lua } from '@codemirror/legacy-modes/mode/lua';

const setErrorEffect = StateEffect.define();

class ErrorWidget extends WidgetType {
  constructor(line, message) { super(); this.line = line; this.message = message; }
  eq(o) { return o.line === this.line && o.message === this.message; }
  toDOM() {
    const d = document.createElement('div');
    d.className = 'cm-inline-error';
    d.setAttribute('data-line', String(this.line));
    d.textContent = `line ${this.line}: ${this.message}`;
    return d;
  }
}

const errorField = StateField.define({
  create: () => Decoration.none,
  update(deco, tr) {
    deco = deco.map(tr.changes);
    for (const e of tr.effects) {
      if (!e.is(setErrorEffect)) continue;
      if (!e.value) { deco = Decoration.none; continue; }
      const doc = tr.state.doc;
      const n = Math.min(Math.max(1, e.value.line), doc.lines);
      const line = doc.line(n);
      deco = Decoration.set([
        Decoration.line({ attributes: { class: 'cm-error-line', 'data-line': String(n) } }).range(line.from),
        Decoration.widget({ widget: new ErrorWidget(e.value.line, e.value.message), block: true, side: 1 }).range(line.to),
      ]);
    }
    return deco;
  },
  provide: (f) => EditorView.decorations.from(f),
});

const theme = EditorView.theme({
  '&': { fontSize: '13px', border: '1px solid var(--line)', borderRadius: '6px', background: '#fff' },
  '.cm-scroller': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace', minHeight: '420px' },
  '.cm-gutters': { background: '#f6f7f9', borderRight: '1px solid var(--line)', color: '#8a919c' },
  '.cm-error-line': { background: '#fde8e8' },
  '.cm-inline-error': {
    background: '#fbd5d5', color: '#8a1c1c', padding: '2px 8px', fontFamily: 'system-ui, sans-serif',
    fontSize: '12px', borderLeft: '3px solid #c81e1e',
  },
});

// opts: {doc, onChange(doc), onSave(), readOnly}
export function createEditor(parent, opts = {}) {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: opts.doc || '',
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        highlightActiveLine(),
        StreamLanguage.define(lua),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        keymap.of([
          { key: 'Mod-s', preventDefault: true, run: () => { opts.onSave && opts.onSave(); return true; } },
          indentWithTab, ...defaultKeymap, ...historyKeymap,
        ]),
        errorField,
        theme,
        EditorState.tabSize.of(2),
        EditorState.readOnly.of(!!opts.readOnly),
        EditorView.updateListener.of((u) => {
          if (u.docChanged && opts.onChange) opts.onChange(u.state.doc.toString());
        }),
      ],
    }),
  });
  return {
    view,
    getDoc: () => view.state.doc.toString(),
    setDoc(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text }, effects: setErrorEffect.of(null) });
    },
    setError(line, message) {
      const n = Math.min(Math.max(1, line || 1), view.state.doc.lines);
      view.dispatch({
        effects: [setErrorEffect.of({ line: line || 1, message }), EditorView.scrollIntoView(view.state.doc.line(n).from, { y: 'center' })],
      });
    },
    clearError() { view.dispatch({ effects: setErrorEffect.of(null) }); },
    focus() { view.focus(); },
    destroy() { view.destroy(); },
  };
}
