"""speechbrain-dyncp: dynamic channel pruning (DynCP) speech enhancement for SpeechBrain.

One gated enhancer gives enhanced speech, input-adaptive compute and, read off
its binary gate masks, voice activity, noise class, SNR and F0. Around it:
a Grad-W speaker-verification-aware enhancement loss and layer-attentive
pooling (LAP) over pre-trained SSL models.

Package map
-----------
lobes/       networks: gates, gated TCN, enhancer, probes, U-Net, layer pooling
losses/      DynCP spectral + ratio loss, Grad-W, sub-centre AAM
data/        embedded corpus synthesiser, VoxCeleb / VoiceBank / noise prep
metrics/     SI-SDR, EER / minDCF, score normalisation
inference/   SpeechBrain ``Pretrained`` interfaces
cli          the ``dyncp`` command line
"""

__version__ = "0.1.0"
