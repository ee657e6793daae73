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
    <name>CatalogView</name>
    <message>
        <source>Estimated RAM while chatting: the file plus about 1 GiB for the context (KV cache) and working buffers</source>
        <translation>RAM estimada al chatear: el archivo más alrededor de 1 GiB para el contexto (caché KV) y los búferes de trabajo</translation>
    </message>
    <message>
        <source>Downloading %1%</source>
        <translation>Descargando %1%</translation>
    </message>
    <message>
        <source>Cancelling…</source>
        <translation>Cancelando…</translation>
    </message>
    <message>
        <source>Download failed</source>
        <translation>La descarga falló</translation>
    </message>
    <message>
        <source>Downloaded and verified</source>
        <translation>Descargado y verificado</translation>
    </message>
    <message>
        <source>Installed</source>
        <translation>Instalado</translation>
    </message>
    <message>
        <source>Partly downloaded (%1 kept)</source>
        <translation>Descargado en parte (%1 guardados)</translation>
    </message>
    <message>
        <source>Downloading…</source>
        <translation>Descargando…</translation>
    </message>
    <message>
        <source>&amp;Use this model</source>
        <translation>&amp;Usar este modelo</translation>
    </message>
    <message>
        <source>&amp;Resume download</source>
        <translation>&amp;Reanudar la descarga</translation>
    </message>
    <message>
        <source>&amp;Download</source>
        <translation>&amp;Descargar</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>Modelo</translation>
    </message>
    <message>
        <source>Quantisation</source>
        <translation>Cuantización</translation>
    </message>
    <message>
        <source>Download</source>
        <translation>Descarga</translation>
    </message>
    <message>
        <source>RAM needed</source>
        <translation>RAM necesaria</translation>
    </message>
    <message>
        <source>Status</source>
        <translation>Estado</translation>
    </message>
    <message>
        <source>Models to download</source>
        <translation>Modelos para descargar</translation>
    </message>
    <message>
        <source>Columns</source>
        <translation>Columnas</translation>
    </message>
    <message>
        <source>&amp;Cancel download</source>
        <translation>&amp;Cancelar la descarga</translation>
    </message>
    <message>
        <source>Cancel download</source>
        <translation>Cancelar la descarga</translation>
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
    <name>JobRow</name>
    <message>
        <source>Downloading %1</source>
        <translation>Descargando %1</translation>
    </message>
    <message>
        <source>Building the projector %1</source>
        <translation>Construyendo el proyector %1</translation>
    </message>
    <message>
        <source>Importing %1</source>
        <translation>Importando %1</translation>
    </message>
    <message>
        <source>Progress of %1</source>
        <translation>Progreso de %1</translation>
    </message>
    <message>
        <source>Error</source>
        <translation>Error</translation>
    </message>
    <message>
        <source>Notice</source>
        <translation>Aviso</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>Cancelar</translation>
    </message>
    <message>
        <source>Dismiss</source>
        <translation>Descartar</translation>
    </message>
    <message>
        <source>Cancel %1</source>
        <translation>Cancelar %1</translation>
    </message>
    <message>
        <source>Dismiss %1</source>
        <translation>Descartar %1</translation>
    </message>
    <message>
        <source>Cancelling…</source>
        <translation>Cancelando…</translation>
    </message>
    <message>
        <source>Cancelled. Start it again to continue where it stopped.</source>
        <translation>Cancelado. Vuelve a iniciarlo para continuar donde se quedó.</translation>
    </message>
    <message>
        <source>Failed.</source>
        <translation>Falló.</translation>
    </message>
    <message>
        <source>Starting…</source>
        <translation>Iniciando…</translation>
    </message>
</context>
<context>
    <name>LocalView</name>
    <message>
        <source>none</source>
        <translation>ninguno</translation>
    </message>
    <message>
        <source>Models folder</source>
        <translation>Carpeta de modelos</translation>
    </message>
    <message>
        <source>Added folder</source>
        <translation>Carpeta añadida</translation>
    </message>
    <message>
        <source>Hugging Face cache</source>
        <translation>Caché de Hugging Face</translation>
    </message>
    <message>
        <source>Looking for models on this computer…</source>
        <translation>Buscando modelos en este equipo…</translation>
    </message>
    <message>
        <source>No usable model found on this computer yet.</source>
        <translation>Aún no se ha encontrado ningún modelo utilizable en este equipo.</translation>
    </message>
    <message>
        <source>%1 file(s) could not be used; hover here for the reasons.</source>
        <translation>%1 archivo(s) no se pudieron usar; pasa el ratón por aquí para ver los motivos.</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>Modelo</translation>
    </message>
    <message>
        <source>Found in</source>
        <translation>Encontrado en</translation>
    </message>
    <message>
        <source>Size</source>
        <translation>Tamaño</translation>
    </message>
    <message>
        <source>Projector</source>
        <translation>Proyector</translation>
    </message>
    <message>
        <source>Models on this computer</source>
        <translation>Modelos en este equipo</translation>
    </message>
    <message>
        <source>Columns</source>
        <translation>Columnas</translation>
    </message>
    <message>
        <source>U&amp;se selected</source>
        <translation>U&amp;sar el seleccionado</translation>
    </message>
    <message>
        <source>Use the selected model</source>
        <translation>Usar el modelo seleccionado</translation>
    </message>
    <message>
        <source>&amp;Import a file…</source>
        <translation>&amp;Importar un archivo…</translation>
    </message>
    <message>
        <source>Import a model file</source>
        <translation>Importar un archivo de modelo</translation>
    </message>
    <message>
        <source>Add &amp;folder…</source>
        <translation>Añadir &amp;carpeta…</translation>
    </message>
    <message>
        <source>Add a folder to search</source>
        <translation>Añadir una carpeta donde buscar</translation>
    </message>
    <message>
        <source>Search a&amp;gain</source>
        <translation>Buscar de &amp;nuevo</translation>
    </message>
    <message>
        <source>Search for models again</source>
        <translation>Buscar modelos de nuevo</translation>
    </message>
    <message>
        <source>Copy a GGUF model or projector into the models folder after checking it</source>
        <translation>Copiar un modelo o proyector GGUF a la carpeta de modelos tras comprobarlo</translation>
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
        <source>Retry</source>
        <translation>Reintentar</translation>
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
        <source>The projector %1 does not fit %2, so it was not attached.</source>
        <translation>El proyector %1 no corresponde a %2, así que no se ha acoplado.</translation>
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
        <source>The engine stopped unexpectedly and is restarting: %1</source>
        <translation>El motor se detuvo inesperadamente y se está reiniciando: %1</translation>
    </message>
    <message>
        <source>The engine was restarted in %1 s after it stopped unexpectedly: %2. Your conversation is kept: press Retry to answer the last message again.</source>
        <translation>El motor se reinició en %1 s tras detenerse inesperadamente: %2. La conversación se conserva: pulsa Reintentar para responder de nuevo al último mensaje.</translation>
    </message>
    <message>
        <source>%1 (with the projector %2; choose another with File, Choose projector)</source>
        <translation>%1 (con el proyector %2; elige otro en Archivo, Elegir proyector)</translation>
    </message>
</context>
<context>
    <name>ModelManagerPage</name>
    <message>
        <source>Models</source>
        <translation>Modelos</translation>
    </message>
    <message>
        <source>This computer has %1 of RAM.</source>
        <translation>Este equipo tiene %1 de RAM.</translation>
    </message>
    <message>
        <source>Gemma Desk runs Google&apos;s Gemma 3n entirely on this computer, so it needs a model file. %1 Download one below (E2B is smaller and faster, E4B answers better), or use one you already have. Downloads go on while you chat, and an interrupted one resumes where it stopped. Downloaded and imported models are kept in %2.</source>
        <translation>Gemma Desk ejecuta Gemma 3n de Google por completo en este equipo, así que necesita un archivo de modelo. %1 Descarga uno abajo (E2B es más pequeño y rápido, E4B responde mejor) o usa uno que ya tengas. Las descargas siguen mientras chateas, y una interrumpida se reanuda donde se quedó. Los modelos descargados e importados se guardan en %2.</translation>
    </message>
    <message>
        <source>&amp;Back to the conversation</source>
        <translation>&amp;Volver a la conversación</translation>
    </message>
    <message>
        <source>Back to the conversation</source>
        <translation>Volver a la conversación</translation>
    </message>
    <message>
        <source>Download a model</source>
        <translation>Descargar un modelo</translation>
    </message>
    <message>
        <source>Transfers</source>
        <translation>Transferencias</translation>
    </message>
    <message>
        <source>Images and speech</source>
        <translation>Imágenes y voz</translation>
    </message>
    <message>
        <source>Hugging Face token</source>
        <translation>Token de Hugging Face</translation>
    </message>
    <message>
        <source>On this computer</source>
        <translation>En este equipo</translation>
    </message>
    <message>
        <source>Model manager</source>
        <translation>Gestor de modelos</translation>
    </message>
</context>
<context>
    <name>ModelManagerText</name>
    <message>
        <source>%1 s</source>
        <translation>%1 s</translation>
    </message>
    <message>
        <source>%1 min</source>
        <translation>%1 min</translation>
    </message>
    <message>
        <source>%1 h %2 min</source>
        <translation>%1 h %2 min</translation>
    </message>
    <message>
        <source>Downloading</source>
        <translation>Descargando</translation>
    </message>
    <message>
        <source>Checking the bytes already here</source>
        <translation>Comprobando los bytes ya descargados</translation>
    </message>
    <message>
        <source>Copying</source>
        <translation>Copiando</translation>
    </message>
    <message>
        <source>Reading the checkpoint&apos;s index</source>
        <translation>Leyendo el índice del checkpoint</translation>
    </message>
    <message>
        <source>Fetching the image and speech towers</source>
        <translation>Descargando las torres de imagen y voz</translation>
    </message>
    <message>
        <source>Writing the projector</source>
        <translation>Escribiendo el proyector</translation>
    </message>
    <message>
        <source>Verifying the projector</source>
        <translation>Verificando el proyector</translation>
    </message>
    <message>
        <source>%1 of %2</source>
        <translation>%1 de %2</translation>
    </message>
    <message>
        <source>%1/s</source>
        <translation>%1/s</translation>
    </message>
    <message>
        <source>about %1 left</source>
        <translation>quedan unos %1</translation>
    </message>
    <message>
        <source>fits this computer</source>
        <translation>cabe en este equipo</translation>
    </message>
    <message>
        <source>tight: close other programs</source>
        <translation>justo: cierra otros programas</translation>
    </message>
    <message>
        <source>too large for this computer</source>
        <translation>demasiado grande para este equipo</translation>
    </message>
    <message>
        <source>unknown</source>
        <translation>desconocido</translation>
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
    <name>ProjectorBox</name>
    <message>
        <source>%1 can see images and hear speech with the projector %2.</source>
        <translation>%1 puede ver imágenes y oír la voz con el proyector %2.</translation>
    </message>
    <message>
        <source>Images and speech for %1 need its projector %2 (%3). Chat works meanwhile.</source>
        <translation>Las imágenes y la voz para %1 necesitan su proyector %2 (%3). Mientras tanto, el chat funciona.</translation>
    </message>
    <message>
        <source>Images and speech for %1 need a projector. None is published for Gemma 3n, so Gemma Desk builds one from Google&apos;s checkpoint %2, fetching only its image and speech parts (about 2 GB). Google&apos;s repository is gated: accept its licence on Hugging Face and save a token below first. Chat works while it builds.</source>
        <translation>Las imágenes y la voz para %1 necesitan un proyector. No hay ninguno publicado para Gemma 3n, así que Gemma Desk construye uno a partir del checkpoint de Google %2, descargando solo sus partes de imagen y voz (unos 2 GB). El repositorio de Google es restringido: acepta antes su licencia en Hugging Face y guarda un token abajo. El chat funciona mientras se construye.</translation>
    </message>
    <message>
        <source>No projector is known for %1, so it answers text only. If you have one, choose it with File, Choose projector.</source>
        <translation>No se conoce ningún proyector para %1, así que solo responde a texto. Si tienes uno, elígelo en Archivo, Elegir proyector.</translation>
    </message>
    <message>
        <source>Choose or download a model first; its projector adds images and speech.</source>
        <translation>Elige o descarga primero un modelo; su proyector añade imágenes y voz.</translation>
    </message>
    <message>
        <source>Working on it (see Transfers)</source>
        <translation>En curso (ver Transferencias)</translation>
    </message>
    <message>
        <source>Download &amp;projector</source>
        <translation>Descargar el &amp;proyector</translation>
    </message>
    <message>
        <source>&amp;Build projector</source>
        <translation>&amp;Construir el proyector</translation>
    </message>
    <message>
        <source>Images and speech</source>
        <translation>Imágenes y voz</translation>
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
        <source>unknown (%1)</source>
        <translation>desconocido (%1)</translation>
    </message>
    <message>
        <source>detecting…</source>
        <translation>detectando…</translation>
    </message>
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
        <source>Runs on:</source>
        <translation>Se ejecuta en:</translation>
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
        <source>automatic</source>
        <translation>automático</translation>
    </message>
    <message>
        <source>all</source>
        <translation>todas</translation>
    </message>
    <message>
        <source>Layers to offload to the GPU; 0 runs on the CPU only; automatic: as many as fit</source>
        <translation>Capas que se pasan a la GPU; 0 usa solo la CPU; automático: tantas como quepan</translation>
    </message>
    <message>
        <source>automatic: the largest context that fits this computer&apos;s memory, at most %1 tokens</source>
        <translation>automático: el mayor contexto que cabe en la memoria de este equipo, como máximo %1 tokens</translation>
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
        <source>Add a folder to search for models</source>
        <translation>Añadir una carpeta donde buscar modelos</translation>
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
        <source>Memory held by each part of the model</source>
        <translation>Memoria que ocupa cada parte del modelo</translation>
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
        <source>first token %1 ms · %2 tok/s</source>
        <translation>primer token %1 ms · %2 tok/s</translation>
    </message>
    <message>
        <source>%1 of %2 prompt tokens prefilled; the rest came from the KV cache</source>
        <translation>%1 de %2 tokens del prompt procesados; el resto vino de la caché KV</translation>
    </message>
    <message>
        <source>text</source>
        <translation>texto</translation>
    </message>
    <message>
        <source>PLE</source>
        <translation>PLE</translation>
    </message>
    <message>
        <source>KV</source>
        <translation>KV</translation>
    </message>
    <message>
        <source>compute</source>
        <translation>cálculo</translation>
    </message>
    <message>
        <source>vision</source>
        <translation>visión</translation>
    </message>
    <message>
        <source>audio</source>
        <translation>audio</translation>
    </message>
    <message>
        <source>Text model weights</source>
        <translation>Pesos del modelo de texto</translation>
    </message>
    <message>
        <source>Per-layer embeddings (PLE) in RAM</source>
        <translation>Embeddings por capa (PLE) en RAM</translation>
    </message>
    <message>
        <source>KV cache (the conversation&apos;s context)</source>
        <translation>Caché KV (el contexto de la conversación)</translation>
    </message>
    <message>
        <source>Compute buffers</source>
        <translation>Búferes de cálculo</translation>
    </message>
    <message>
        <source>Vision tower</source>
        <translation>Torre de visión</translation>
    </message>
    <message>
        <source>Audio tower</source>
        <translation>Torre de audio</translation>
    </message>
    <message>
        <source>RAM: %1</source>
        <translation>RAM: %1</translation>
    </message>
    <message>
        <source>Whole process: %1</source>
        <translation>Proceso completo: %1</translation>
    </message>
    <message>
        <source>Peak during the last answer: %1</source>
        <translation>Pico durante la última respuesta: %1</translation>
    </message>
    <message>
        <source>Mapped from the model file, loaded only as needed: %1</source>
        <translation>Mapeado desde el archivo del modelo, cargado solo cuando hace falta: %1</translation>
    </message>
    <message>
        <source>Image and speech towers load on first use and are released when idle.</source>
        <translation>Las torres de imagen y voz se cargan al usarlas por primera vez y se liberan cuando no se usan.</translation>
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
    <name>TokenBox</name>
    <message>
        <source>Gated repositories (Google&apos;s own Gemma 3n) need a free Hugging Face account: accept the model&apos;s licence on its page, create a read token at &lt;a href=&quot;%1&quot;&gt;%1&lt;/a&gt; and paste it here. It is stored in Gemma Desk&apos;s settings file on this computer and sent only to Hugging Face.</source>
        <translation>Los repositorios restringidos (el propio Gemma 3n de Google) necesitan una cuenta gratuita de Hugging Face: acepta la licencia del modelo en su página, crea un token de lectura en &lt;a href=&quot;%1&quot;&gt;%1&lt;/a&gt; y pégalo aquí. Se guarda en el archivo de ajustes de Gemma Desk en este equipo y solo se envía a Hugging Face.</translation>
    </message>
    <message>
        <source>Hugging Face token</source>
        <translation>Token de Hugging Face</translation>
    </message>
    <message>
        <source>Save &amp;token</source>
        <translation>Guardar el &amp;token</translation>
    </message>
    <message>
        <source>Save the Hugging Face token</source>
        <translation>Guardar el token de Hugging Face</translation>
    </message>
    <message>
        <source>Forget token</source>
        <translation>Olvidar el token</translation>
    </message>
    <message>
        <source>Forget the saved Hugging Face token</source>
        <translation>Olvidar el token de Hugging Face guardado</translation>
    </message>
    <message>
        <source>A token is saved.</source>
        <translation>Hay un token guardado.</translation>
    </message>
    <message>
        <source>No token saved.</source>
        <translation>No hay ningún token guardado.</translation>
    </message>
</context>
<context>
    <name>TransfersButton</name>
    <message>
        <source>Transfers: %1</source>
        <translation>Transferencias: %1</translation>
    </message>
    <message>
        <source>Transfers in progress; open the model manager</source>
        <translation>Transferencias en curso; abrir el gestor de modelos</translation>
    </message>
    <message>
        <source>Open the model manager</source>
        <translation>Abrir el gestor de modelos</translation>
    </message>
</context>
<context>
    <name>VoiceController</name>
    <message>
        <source>Wait for the answer to finish (or stop it) before talking.</source>
        <translation>Espera a que termine la respuesta (o detenla) antes de hablar.</translation>
    </message>
    <message>
        <source>The microphone was still starting: hold a moment longer.</source>
        <translation>El micrófono aún se estaba iniciando: mantén pulsado un momento más.</translation>
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
        <source>&amp;Models: download, import, build…</source>
        <translation>&amp;Modelos: descargar, importar, construir…</translation>
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
