<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="es">
<context>
    <name>AttachmentChip</name>
    <message>
        <source>Audio: %1 (%2 s)</source>
        <translation>Audio: %1 (%2 s)</translation>
    </message>
    <message>
        <source>Image: %1</source>
        <translation>Imagen: %1</translation>
    </message>
    <message>
        <source>Remove attachment</source>
        <translation>Quitar adjunto</translation>
    </message>
    <message>
        <source>Remove attachment %1</source>
        <translation>Quitar adjunto %1</translation>
    </message>
</context>
<context>
    <name>AttachmentController</name>
    <message>
        <source>Could not attach the image: %1</source>
        <translation>No se pudo adjuntar la imagen: %1</translation>
    </message>
    <message>
        <source>Images need a projector (mmproj) with a vision tower: choose one with File, Choose projector</source>
        <translation>Las imágenes necesitan un proyector (mmproj) con torre de visión: elige uno en Archivo, Elegir proyector</translation>
    </message>
</context>
<context>
    <name>CameraController</name>
    <message>
        <source>No camera found. Connect one and open this panel again.</source>
        <translation>No se encontró ninguna cámara. Conecta una y vuelve a abrir este panel.</translation>
    </message>
    <message>
        <source>Starting the camera…</source>
        <translation>Iniciando la cámara…</translation>
    </message>
    <message>
        <source>camera snapshot</source>
        <translation>captura de cámara</translation>
    </message>
</context>
<context>
    <name>CameraPanel</name>
    <message>
        <source>Camera</source>
        <translation>Cámara</translation>
    </message>
    <message>
        <source>Snapshot</source>
        <translation>Capturar</translation>
    </message>
    <message>
        <source>Attach the current frame to your next message</source>
        <translation>Adjunta la imagen actual a tu próximo mensaje</translation>
    </message>
    <message>
        <source>Take snapshot</source>
        <translation>Capturar imagen</translation>
    </message>
    <message>
        <source>Camera preview</source>
        <translation>Vista previa de la cámara</translation>
    </message>
    <message>
        <source>Camera status</source>
        <translation>Estado de la cámara</translation>
    </message>
</context>
<context>
    <name>ChatController</name>
    <message>
        <source>The answer failed: %1</source>
        <translation>La respuesta falló: %1</translation>
    </message>
</context>
<context>
    <name>Composer</name>
    <message>
        <source>Message Gemma (Enter sends, Shift+Enter adds a line)</source>
        <translation>Escribe a Gemma (Intro envía, Mayús+Intro añade una línea)</translation>
    </message>
    <message>
        <source>Message</source>
        <translation>Mensaje</translation>
    </message>
    <message>
        <source>Mode</source>
        <translation>Modo</translation>
    </message>
    <message>
        <source>Chat with text, or transcribe or translate speech</source>
        <translation>Conversar por texto, o transcribir o traducir voz</translation>
    </message>
    <message>
        <source>Target language</source>
        <translation>Idioma de destino</translation>
    </message>
    <message>
        <source>Language to translate speech into</source>
        <translation>Idioma al que traducir la voz</translation>
    </message>
    <message>
        <source>Editing your last message. Send replaces it; Esc cancels.</source>
        <translation>Editando tu último mensaje. Enviar lo reemplaza; Esc cancela.</translation>
    </message>
    <message>
        <source>Cancel edit</source>
        <translation>Cancelar edición</translation>
    </message>
    <message>
        <source>Image…</source>
        <translation>Imagen…</translation>
    </message>
    <message>
        <source>Attach image</source>
        <translation>Adjuntar imagen</translation>
    </message>
    <message>
        <source>Attachment error</source>
        <translation>Error del adjunto</translation>
    </message>
    <message>
        <source>Chat</source>
        <translation>Chat</translation>
    </message>
    <message>
        <source>Transcribe</source>
        <translation>Transcribir</translation>
    </message>
    <message>
        <source>Translate</source>
        <translation>Traducir</translation>
    </message>
    <message>
        <source>Stop</source>
        <translation>Detener</translation>
    </message>
    <message>
        <source>Stop the answer (Esc)</source>
        <translation>Detener la respuesta (Esc)</translation>
    </message>
    <message>
        <source>Stop answer</source>
        <translation>Detener respuesta</translation>
    </message>
    <message>
        <source>Send</source>
        <translation>Enviar</translation>
    </message>
    <message>
        <source>Send (Enter or Ctrl+Enter)</source>
        <translation>Enviar (Intro o Ctrl+Intro)</translation>
    </message>
    <message>
        <source>Load a model first</source>
        <translation>Primero carga un modelo</translation>
    </message>
    <message>
        <source>Transcribe and Translate work on speech: hold to talk.</source>
        <translation>Transcribir y Traducir trabajan con voz: mantén pulsado para hablar.</translation>
    </message>
    <message>
        <source>Needs audio input: the loaded projector (mmproj) has no audio tower</source>
        <translation>Necesita entrada de audio: el proyector (mmproj) cargado no tiene torre de audio</translation>
    </message>
    <message>
        <source>Needs audio input: choose a Gemma 3n projector (mmproj) with an audio tower</source>
        <translation>Necesita entrada de audio: elige un proyector (mmproj) de Gemma 3n con torre de audio</translation>
    </message>
    <message>
        <source>Attach images (or paste or drop them here)</source>
        <translation>Adjuntar imágenes (o pégalas o suéltalas aquí)</translation>
    </message>
    <message>
        <source>The loaded projector (mmproj) has no vision tower, so images cannot be sent</source>
        <translation>El proyector (mmproj) cargado no tiene torre de visión, así que no se pueden enviar imágenes</translation>
    </message>
    <message>
        <source>Images need a Gemma 3n projector (mmproj): choose one with File, Choose projector</source>
        <translation>Las imágenes necesitan un proyector (mmproj) de Gemma 3n: elige uno en Archivo, Elegir proyector</translation>
    </message>
    <message>
        <source>Send message</source>
        <translation>Enviar mensaje</translation>
    </message>
</context>
<context>
    <name>ConversationView</name>
    <message>
        <source>Ask anything. Answers are generated on this computer; nothing leaves it.</source>
        <translation>Pregunta lo que quieras. Las respuestas se generan en este ordenador; nada sale de él.</translation>
    </message>
    <message>
        <source>Conversation</source>
        <translation>Conversación</translation>
    </message>
</context>
<context>
    <name>EmptyState</name>
    <message>
        <source>No model loaded</source>
        <translation>Ningún modelo cargado</translation>
    </message>
    <message>
        <source>Gemma Desk runs Google&apos;s Gemma 3n entirely on this computer, so it needs the model file: a GGUF such as gemma-3n-E2B-it-Q4_K_M.gguf (about 3 GB) or the larger E4B. Download one on any computer, then choose it here. A file placed in %1 is found automatically when it is the only one there. A built-in downloader will come in a later version.</source>
        <translation>Gemma Desk ejecuta Gemma 3n de Google por completo en este ordenador, así que necesita el archivo del modelo: un GGUF como gemma-3n-E2B-it-Q4_K_M.gguf (unos 3 GB) o el E4B, más grande. Descárgalo en cualquier ordenador y elígelo aquí. Un archivo colocado en %1 se encuentra automáticamente si es el único. Una versión posterior incluirá un gestor de descargas.</translation>
    </message>
    <message>
        <source>Choose model file…</source>
        <translation>Elegir archivo del modelo…</translation>
    </message>
    <message>
        <source>Choose model file</source>
        <translation>Elegir archivo del modelo</translation>
    </message>
    <message>
        <source>Open a Gemma 3n GGUF file (Ctrl+O)</source>
        <translation>Abrir un archivo GGUF de Gemma 3n (Ctrl+O)</translation>
    </message>
</context>
<context>
    <name>HistoryController</name>
    <message>
        <source>That conversation no longer exists.</source>
        <translation>Esa conversación ya no existe.</translation>
    </message>
    <message>
        <source>Export failed: %1</source>
        <translation>La exportación falló: %1</translation>
    </message>
    <message>
        <source>Exported to %1</source>
        <translation>Exportado a %1</translation>
    </message>
</context>
<context>
    <name>HistorySidebar</name>
    <message>
        <source>Untitled conversation</source>
        <translation>Conversación sin título</translation>
    </message>
    <message>
        <source>Rename</source>
        <translation>Renombrar</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>Eliminar</translation>
    </message>
    <message>
        <source>Search conversations</source>
        <translation>Buscar conversaciones</translation>
    </message>
    <message>
        <source>Saved conversations</source>
        <translation>Conversaciones guardadas</translation>
    </message>
    <message>
        <source>New chat</source>
        <translation>Nuevo chat</translation>
    </message>
    <message>
        <source>Start a new conversation (Ctrl+N)</source>
        <translation>Empezar una conversación nueva (Ctrl+N)</translation>
    </message>
    <message>
        <source>Rename the selected conversation (F2)</source>
        <translation>Renombrar la conversación seleccionada (F2)</translation>
    </message>
    <message>
        <source>Rename conversation</source>
        <translation>Renombrar conversación</translation>
    </message>
    <message>
        <source>Delete the selected conversation (Delete)</source>
        <translation>Eliminar la conversación seleccionada (Supr)</translation>
    </message>
    <message>
        <source>Delete conversation</source>
        <translation>Eliminar conversación</translation>
    </message>
    <message>
        <source>Export</source>
        <translation>Exportar</translation>
    </message>
    <message>
        <source>Export the selected conversation</source>
        <translation>Exportar la conversación seleccionada</translation>
    </message>
    <message>
        <source>Export conversation</source>
        <translation>Exportar conversación</translation>
    </message>
    <message>
        <source>Export as Markdown…</source>
        <translation>Exportar como Markdown…</translation>
    </message>
    <message>
        <source>Export as JSON…</source>
        <translation>Exportar como JSON…</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>Gemma Desk runs Google&apos;s Gemma 3n on this computer with llama.cpp. Nothing leaves it.</source>
        <translation>Gemma Desk ejecuta Gemma 3n de Google en este ordenador con llama.cpp. Nada sale de él.</translation>
    </message>
    <message>
        <source>Closing…</source>
        <translation>Cerrando…</translation>
    </message>
    <message>
        <source>Gemma Desk</source>
        <translation>Gemma Desk</translation>
    </message>
</context>
<context>
    <name>MessageWidget</name>
    <message>
        <source>You</source>
        <translation>Tú</translation>
    </message>
    <message>
        <source>Gemma</source>
        <translation>Gemma</translation>
    </message>
    <message>
        <source>Copy</source>
        <translation>Copiar</translation>
    </message>
    <message>
        <source>Copy this message as Markdown</source>
        <translation>Copiar este mensaje como Markdown</translation>
    </message>
    <message>
        <source>Edit</source>
        <translation>Editar</translation>
    </message>
    <message>
        <source>Edit this message and send it again</source>
        <translation>Editar este mensaje y enviarlo de nuevo</translation>
    </message>
    <message>
        <source>Regenerate</source>
        <translation>Regenerar</translation>
    </message>
    <message>
        <source>Answer the last message again</source>
        <translation>Responder de nuevo al último mensaje</translation>
    </message>
    <message>
        <source>Your message</source>
        <translation>Tu mensaje</translation>
    </message>
    <message>
        <source>Gemma&apos;s answer</source>
        <translation>Respuesta de Gemma</translation>
    </message>
    <message>
        <source>Message text</source>
        <translation>Texto del mensaje</translation>
    </message>
    <message>
        <source>Copy message</source>
        <translation>Copiar mensaje</translation>
    </message>
    <message>
        <source>Edit message</source>
        <translation>Editar mensaje</translation>
    </message>
    <message>
        <source>Regenerate answer</source>
        <translation>Regenerar respuesta</translation>
    </message>
    <message>
        <source>1 image</source>
        <translation>1 imagen</translation>
    </message>
    <message>
        <source>%1 images</source>
        <translation>%1 imágenes</translation>
    </message>
    <message>
        <source>1 audio clip</source>
        <translation>1 clip de audio</translation>
    </message>
    <message>
        <source>%1 audio clips</source>
        <translation>%1 clips de audio</translation>
    </message>
    <message>
        <source>writing…</source>
        <translation>escribiendo…</translation>
    </message>
    <message>
        <source>stopped</source>
        <translation>detenida</translation>
    </message>
    <message>
        <source>error</source>
        <translation>error</translation>
    </message>
</context>
<context>
    <name>ModelController</name>
    <message>
        <source>%1 is a multimodal projector (mmproj), not a language model. Choose the Gemma 3n model file itself; projectors are loaded alongside it.</source>
        <translation>%1 es un proyector multimodal (mmproj), no un modelo de lenguaje. Elige el archivo del modelo Gemma 3n; los proyectores se cargan junto a él.</translation>
    </message>
    <message>
        <source>could not read the file: %1</source>
        <translation>no se pudo leer el archivo: %1</translation>
    </message>
    <message>
        <source>The model could not be loaded: %1</source>
        <translation>No se pudo cargar el modelo: %1</translation>
    </message>
    <message>
        <source>%1 (with the projector %2; choose another with File, Choose projector)</source>
        <translation>%1 (con el proyector %2; elige otro en Archivo, Elegir proyector)</translation>
    </message>
</context>
<context>
    <name>NoticeBar</name>
    <message>
        <source>Error</source>
        <translation>Error</translation>
    </message>
    <message>
        <source>Notice</source>
        <translation>Aviso</translation>
    </message>
    <message>
        <source>Dismiss</source>
        <translation>Cerrar</translation>
    </message>
    <message>
        <source>Dismiss notice</source>
        <translation>Cerrar aviso</translation>
    </message>
</context>
<context>
    <name>SettingsController</name>
    <message>
        <source>Settings not saved: %1</source>
        <translation>Ajustes no guardados: %1</translation>
    </message>
</context>
<context>
    <name>SettingsDialog</name>
    <message>
        <source>Choose a Gemma 3n model</source>
        <translation>Elige un modelo Gemma 3n</translation>
    </message>
    <message>
        <source>GGUF models (*.gguf)</source>
        <translation>Modelos GGUF (*.gguf)</translation>
    </message>
    <message>
        <source>Settings</source>
        <translation>Ajustes</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>Modelo</translation>
    </message>
    <message>
        <source>Answers</source>
        <translation>Respuestas</translation>
    </message>
    <message>
        <source>Microphone</source>
        <translation>Micrófono</translation>
    </message>
    <message>
        <source>Interface</source>
        <translation>Interfaz</translation>
    </message>
    <message>
        <source>Model &amp;file:</source>
        <translation>&amp;Archivo del modelo:</translation>
    </message>
    <message>
        <source>&amp;Threads:</source>
        <translation>&amp;Hilos:</translation>
    </message>
    <message>
        <source>&amp;Context (tokens):</source>
        <translation>&amp;Contexto (tokens):</translation>
    </message>
    <message>
        <source>&amp;GPU layers:</source>
        <translation>Capas en la &amp;GPU:</translation>
    </message>
    <message>
        <source>T&amp;emperature:</source>
        <translation>T&amp;emperatura:</translation>
    </message>
    <message>
        <source>Top-&amp;k:</source>
        <translation>Top-&amp;k:</translation>
    </message>
    <message>
        <source>Top-&amp;p:</source>
        <translation>Top-&amp;p:</translation>
    </message>
    <message>
        <source>&amp;Seed:</source>
        <translation>&amp;Semilla:</translation>
    </message>
    <message>
        <source>&amp;Maximum answer length (tokens):</source>
        <translation>Longitud &amp;máxima de respuesta (tokens):</translation>
    </message>
    <message>
        <source>&amp;Language:</source>
        <translation>&amp;Idioma:</translation>
    </message>
    <message>
        <source>&amp;Projector (mmproj):</source>
        <translation>&amp;Proyector (mmproj):</translation>
    </message>
    <message>
        <source>M&amp;icrophone:</source>
        <translation>M&amp;icrófono:</translation>
    </message>
    <message>
        <source>&amp;Hold-to-talk key:</source>
        <translation>&amp;Tecla para hablar:</translation>
    </message>
    <message>
        <source>Browse…</source>
        <translation>Examinar…</translation>
    </message>
    <message>
        <source>Browse for a model file</source>
        <translation>Buscar un archivo de modelo</translation>
    </message>
    <message>
        <source>Model file</source>
        <translation>Archivo del modelo</translation>
    </message>
    <message>
        <source>automatic (%1)</source>
        <translation>automático (%1)</translation>
    </message>
    <message>
        <source>all</source>
        <translation>todas</translation>
    </message>
    <message>
        <source>Layers to offload to the GPU; 0 runs on the CPU only</source>
        <translation>Capas que se pasan a la GPU; 0 usa solo la CPU</translation>
    </message>
    <message>
        <source>random</source>
        <translation>aleatoria</translation>
    </message>
    <message>
        <source>0 always picks the most likely token</source>
        <translation>0 elige siempre el token más probable</translation>
    </message>
    <message>
        <source>Hold-to-talk key</source>
        <translation>Tecla para hablar</translation>
    </message>
    <message>
        <source>automatic: the only *mmproj*.gguf beside the model</source>
        <translation>automático: el único *mmproj*.gguf junto al modelo</translation>
    </message>
    <message>
        <source>System default</source>
        <translation>Predeterminado del sistema</translation>
    </message>
    <message>
        <source>Follow the system</source>
        <translation>Según el sistema</translation>
    </message>
</context>
<context>
    <name>StandardDialogs</name>
    <message>
        <source>Choose a Gemma 3n model</source>
        <translation>Elige un modelo Gemma 3n</translation>
    </message>
    <message>
        <source>GGUF models (*.gguf);;All files (*)</source>
        <translation>Modelos GGUF (*.gguf);;Todos los archivos (*)</translation>
    </message>
    <message>
        <source>Choose the projector (mmproj) for images and speech</source>
        <translation>Elige el proyector (mmproj) para imágenes y voz</translation>
    </message>
    <message>
        <source>Projectors (*mmproj*.gguf);;GGUF files (*.gguf);;All files (*)</source>
        <translation>Proyectores (*mmproj*.gguf);;Archivos GGUF (*.gguf);;Todos los archivos (*)</translation>
    </message>
    <message>
        <source>Attach images</source>
        <translation>Adjuntar imágenes</translation>
    </message>
    <message>
        <source>Images (*.png *.jpg *.jpeg *.webp *.gif *.bmp *.tif *.tiff);;All files (*)</source>
        <translation>Imágenes (*.png *.jpg *.jpeg *.webp *.gif *.bmp *.tif *.tiff);;Todos los archivos (*)</translation>
    </message>
    <message>
        <source>Markdown (*.md)</source>
        <translation>Markdown (*.md)</translation>
    </message>
    <message>
        <source>JSON (*.json)</source>
        <translation>JSON (*.json)</translation>
    </message>
    <message>
        <source>Export conversation</source>
        <translation>Exportar conversación</translation>
    </message>
    <message>
        <source>Untitled conversation</source>
        <translation>Conversación sin título</translation>
    </message>
    <message>
        <source>Delete “%1”? This cannot be undone.</source>
        <translation>¿Eliminar «%1»? No se puede deshacer.</translation>
    </message>
    <message>
        <source>Delete conversation</source>
        <translation>Eliminar conversación</translation>
    </message>
</context>
<context>
    <name>StatusPanel</name>
    <message>
        <source>Model loading progress</source>
        <translation>Progreso de carga del modelo</translation>
    </message>
    <message>
        <source>Image and speech input</source>
        <translation>Entrada de imágenes y voz</translation>
    </message>
    <message>
        <source>Projector: %1</source>
        <translation>Proyector: %1</translation>
    </message>
    <message>
        <source>No projector loaded</source>
        <translation>Ningún proyector cargado</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>Modelo</translation>
    </message>
    <message>
        <source>Last answer statistics</source>
        <translation>Estadísticas de la última respuesta</translation>
    </message>
    <message>
        <source>Memory use</source>
        <translation>Uso de memoria</translation>
    </message>
    <message>
        <source>Loading %1…</source>
        <translation>Cargando %1…</translation>
    </message>
    <message>
        <source>No model loaded</source>
        <translation>Ningún modelo cargado</translation>
    </message>
    <message>
        <source>images</source>
        <translation>imágenes</translation>
    </message>
    <message>
        <source>speech</source>
        <translation>voz</translation>
    </message>
    <message>
        <source>text only</source>
        <translation>solo texto</translation>
    </message>
    <message>
        <source>CPU, threads: %1</source>
        <translation>CPU, hilos: %1</translation>
    </message>
    <message>
        <source>GPU (%1), threads: %2</source>
        <translation>GPU (%1), hilos: %2</translation>
    </message>
    <message>
        <source>all layers</source>
        <translation>todas las capas</translation>
    </message>
    <message>
        <source>context %1</source>
        <translation>contexto %1</translation>
    </message>
    <message>
        <source>first token %1 ms · %2 tok/s · %3 prompt tokens prefilled</source>
        <translation>primer token %1 ms · %2 tok/s · %3 tokens de prompt procesados</translation>
    </message>
    <message>
        <source>image encode %1 ms</source>
        <translation>codificación de imagen %1 ms</translation>
    </message>
    <message>
        <source>audio encode %1 ms</source>
        <translation>codificación de audio %1 ms</translation>
    </message>
    <message>
        <source>peak RAM %1</source>
        <translation>RAM máx. %1</translation>
    </message>
</context>
<context>
    <name>TalkBar</name>
    <message>
        <source>Recording… release to send</source>
        <translation>Grabando… suelta para enviar</translation>
    </message>
    <message>
        <source>Hold to talk</source>
        <translation>Mantén para hablar</translation>
    </message>
    <message>
        <source>Push to talk</source>
        <translation>Pulsar para hablar</translation>
    </message>
    <message>
        <source>Hold this button (or %1) while you speak; release to send</source>
        <translation>Mantén este botón (o %1) mientras hablas; suelta para enviar</translation>
    </message>
    <message>
        <source>Microphone level</source>
        <translation>Nivel del micrófono</translation>
    </message>
    <message>
        <source>Recording time</source>
        <translation>Tiempo de grabación</translation>
    </message>
</context>
<context>
    <name>VoiceController</name>
    <message>
        <source>Wait for the answer to finish (or stop it) before talking.</source>
        <translation>Espera a que termine la respuesta (o detenla) antes de hablar.</translation>
    </message>
    <message>
        <source>Too short: hold the button while you speak.</source>
        <translation>Demasiado corto: mantén el botón mientras hablas.</translation>
    </message>
    <message>
        <source>recording</source>
        <translation>grabación</translation>
    </message>
    <message>
        <source>Recording stopped at 30 s, the longest clip Gemma hears.</source>
        <translation>Grabación detenida a los 30 s, el clip más largo que Gemma escucha.</translation>
    </message>
    <message>
        <source>Cannot record: %1</source>
        <translation>No se puede grabar: %1</translation>
    </message>
</context>
<context>
    <name>WindowActions</name>
    <message>
        <source>&amp;File</source>
        <translation>&amp;Archivo</translation>
    </message>
    <message>
        <source>&amp;Conversation</source>
        <translation>&amp;Conversación</translation>
    </message>
    <message>
        <source>&amp;Help</source>
        <translation>A&amp;yuda</translation>
    </message>
    <message>
        <source>&amp;Open model…</source>
        <translation>&amp;Abrir modelo…</translation>
    </message>
    <message>
        <source>Choose &amp;projector (mmproj)…</source>
        <translation>Elegir &amp;proyector (mmproj)…</translation>
    </message>
    <message>
        <source>&amp;Attach image…</source>
        <translation>&amp;Adjuntar imagen…</translation>
    </message>
    <message>
        <source>Show &amp;camera</source>
        <translation>Mostrar &amp;cámara</translation>
    </message>
    <message>
        <source>&amp;New chat</source>
        <translation>&amp;Nuevo chat</translation>
    </message>
    <message>
        <source>Export as &amp;Markdown…</source>
        <translation>Exportar como &amp;Markdown…</translation>
    </message>
    <message>
        <source>Export as &amp;JSON…</source>
        <translation>Exportar como &amp;JSON…</translation>
    </message>
    <message>
        <source>&amp;Settings…</source>
        <translation>A&amp;justes…</translation>
    </message>
    <message>
        <source>&amp;Quit</source>
        <translation>&amp;Salir</translation>
    </message>
    <message>
        <source>&amp;Send</source>
        <translation>&amp;Enviar</translation>
    </message>
    <message>
        <source>S&amp;top answer</source>
        <translation>&amp;Detener respuesta</translation>
    </message>
    <message>
        <source>&amp;Regenerate answer</source>
        <translation>&amp;Regenerar respuesta</translation>
    </message>
    <message>
        <source>&amp;Edit last message</source>
        <translation>E&amp;ditar último mensaje</translation>
    </message>
    <message>
        <source>&amp;Focus message box</source>
        <translation>Ir al &amp;cuadro de mensaje</translation>
    </message>
    <message>
        <source>&amp;About Gemma Desk</source>
        <translation>A&amp;cerca de Gemma Desk</translation>
    </message>
</context>
</TS>
