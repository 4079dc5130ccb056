namespace Quantize.Core.Quantization;

/// <summary>
/// Maps MSBuild item metadata (<c>Mode="static"</c>, <c>PerChannel="false"</c>) onto <see cref="QuantizationOptions"/>
/// through <see cref="OptionSpec.All"/>. Metadata that names no option (placement such as <c>Link</c>, or anything the
/// user added for other reasons) is not an option and is left alone.
/// </summary>
public static class OptionMetadata
{
    /// <summary>
    /// The item metadata names documented for <c>&lt;QuantizeModel&gt;</c> that differ from <see cref="OptionSpec.Metadata"/>
    /// (the one place such aliases live).
    /// </summary>
    public static IReadOnlyDictionary<string, string> Aliases { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["Exclude"] = "ExcludeNodes",
        ["BlockSize"] = "Int4BlockSize",
        ["AccuracyTarget"] = "MinimumCosine",
    };

    /// <summary>The option a metadata name sets (its own name or an alias), or null when it names none.</summary>
    public static OptionSpec? Find(string metadataName)
    {
        ArgumentNullException.ThrowIfNull(metadataName);
        string name = Aliases.TryGetValue(metadataName, out var target) ? target : metadataName;
        return OptionSpec.All.FirstOrDefault(spec => string.Equals(spec.Metadata, name, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>
    /// Applies every metadata value that names an option, in ordinal order of the names; empty values mean the default.
    /// </summary>
    /// <exception cref="ArgumentException">A bad value, or an option set twice (by its name and an alias); the message names the metadata.</exception>
    public static QuantizationOptions Apply(QuantizationOptions options, IEnumerable<KeyValuePair<string, string>> metadata)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(metadata);
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (string.IsNullOrWhiteSpace(value) || Find(name) is not { } spec) continue;
            if (seen.TryGetValue(spec.Metadata, out var other))
                throw new ArgumentException($"{name} and {other} both set {spec.Metadata}; keep one.");
            seen[spec.Metadata] = name;
            try
            {
                options = spec.Apply(options, value);
            }
            catch (ArgumentException e)
            {
                // The spec's message starts with the CLI name; say the metadata name instead.
                string message = e.Message.StartsWith(spec.Name + ":", StringComparison.Ordinal) ? e.Message[(spec.Name.Length + 1)..].Trim() : e.Message;
                throw new ArgumentException($"{name}: {message}", e);
            }
        }
        options.Validate();
        return options;
    }
}
