namespace Quantize.Core.Evaluation;

/// <summary>How closely one output (or intermediate tensor) of a quantized model follows the float model.</summary>
/// <param name="Name">The output or tensor name.</param>
/// <param name="MeanCosine">Cosine similarity of the flattened tensors, averaged over the samples.</param>
/// <param name="MinCosine">The worst sample's cosine similarity.</param>
/// <param name="MaxAbsError">The largest absolute difference over all samples.</param>
/// <param name="Sqnr">Signal to quantization-noise ratio in dB, over all samples: 10 log10(sum ref^2 / sum (ref - q)^2); infinity if equal.</param>
/// <param name="Top1Agreement">For classifier-like outputs ([batch, classes]), the fraction of rows whose arg max agrees; else null.</param>
/// <param name="Samples">The number of samples compared.</param>
public sealed record TensorAccuracy(string Name, double MeanCosine, double MinCosine, double MaxAbsError, double Sqnr, double? Top1Agreement, int Samples);

/// <summary>The comparison of a quantized model with its float original.</summary>
/// <param name="Outputs">One entry per model output that is float in both models.</param>
/// <param name="Layers">Intermediate float tensors present in both models, worst SQNR first (null unless requested).</param>
/// <param name="Samples">The number of samples run.</param>
/// <param name="GeneratedInputs">True if the inputs were made up from the declared types (no data given).</param>
public sealed record AccuracyReport(IReadOnlyList<TensorAccuracy> Outputs, IReadOnlyList<TensorAccuracy>? Layers, int Samples, bool GeneratedInputs)
{
    /// <summary>The lowest mean cosine over the outputs (1 if there are none).</summary>
    public double WorstMeanCosine => Outputs.Count == 0 ? 1 : Outputs.Min(o => o.MeanCosine);
}
